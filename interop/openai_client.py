"""Calls taogate's OpenAI-compatible routes with the official `openai` package, unchanged.

Usage: openai_client.py BASE_URL API_KEY AUDIO_FILE OUT_DIR
Prints one line per check, `name value`, for the Rust test to compare with taogate's own API.
"""

import json
import sys

import openai

base_url, api_key, audio, out = sys.argv[1:5]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2)

with open(audio, "rb") as f:
    t = client.audio.transcriptions.create(model="whisper-1", file=f, language="en")
print("transcription", json.dumps(t.text))
for fmt in ["text", "srt", "vtt"]:
    with open(audio, "rb") as f:
        r = client.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt)
    print(fmt, json.dumps(r if isinstance(r, str) else str(r)))
with open(audio, "rb") as f:
    v = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
print("verbose", json.dumps({"language": v.language, "duration": v.duration, "text": v.text}))

speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the OpenAI client.", response_format="wav")
speech.write_to_file(f"{out}/speech.wav")
print("speech", len(speech.content))
pcm = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the OpenAI client.", response_format="pcm")
print("pcm", len(pcm.content))
print("models", json.dumps(sorted(m.id for m in client.models.list())))

try:
    client.audio.speech.create(model="tts-1", voice="alloy", input="mp3 please", response_format="mp3")
except openai.BadRequestError as e:
    print("bad_request", e.status_code, e.body.get("param"))
try:
    openai.OpenAI(base_url=base_url, api_key="sk-not-a-taogate-key").models.list()
except openai.AuthenticationError as e:
    print("unauthenticated", e.status_code, e.body.get("type"))
