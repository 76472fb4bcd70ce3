"""A call that outlasts the server's wait: the official `openai` package must not retry it (the
server says `x-should-retry: false`) and the error must name the task.

Usage: openai_timeout.py BASE_URL API_KEY
"""

import sys

import openai

base_url, api_key = sys.argv[1:3]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2)
try:
    client.audio.speech.create(model="tts-1", voice="alloy", input="Slowly, please.", response_format="wav")
    print("finished")
except openai.APIStatusError as e:
    print("status", e.status_code, e.body.get("code"), e.body.get("task_id"))
