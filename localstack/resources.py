"""Creates taogate's AWS resources on local emulators, as template.yaml defines them.

The task table (with its five indexes and TTL), the private encrypted blob bucket with its
lifecycle rule, and one queue per priority class with its dead-letter queue and redrive policy.
Idempotent: existing resources are left as they are. Prints the environment to export.

Used by local-aws.sh (host mode: LocalStack for S3/SQS, moto for DynamoDB) and, inside the
LocalStack container, as an init hook (docker-compose.yml).
"""

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

STACK = os.environ.get("TAOGATE_STACK", "taogate-dev")
ACCOUNT = os.environ.get("TAOGATE_ACCOUNT", "000000000000")
MAX_ATTEMPTS = int(os.environ.get("MAX_ATTEMPTS", "3"))
WORKER_TIMEOUT = int(os.environ.get("TAOGATE_WORKER_TIMEOUT", "60"))
TTL_DAYS = int(os.environ.get("TASK_TTL_DAYS", "7"))
REGION = os.environ.get("AWS_REGION", "us-east-1")
DEFAULT_ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")


def client(service):
    endpoint = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}", DEFAULT_ENDPOINT)
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=boto3.session.Config(s3={"addressing_style": "path"}),
    )


def table(name):
    ddb = client("dynamodb")
    indexes = [("by_created", "list_all"), ("by_owner", "list_owner"), ("by_kind", "list_kind"), ("by_status_kind", "list_status_kind"), ("by_notice", "notice_owed")]
    try:
        ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ["id"] + [key for _, key in indexes]],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}, {"AttributeName": "id", "KeyType": "RANGE"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
                for index, key in indexes
            ],
            SSESpecification={"Enabled": True},
        )
        ddb.get_waiter("table_exists").wait(TableName=name)
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True})
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise


def bucket(name):
    s3 = client("s3")
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    )
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            # As template.yaml: uploads a day, task objects two days past the table's TTL, the
            # miner snapshot never.
            "Rules": [
                {
                    "ID": "expire-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "uploads/"},
                    "Expiration": {"Days": 1},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
            + [
                {
                    "ID": f"expire-{prefix.rstrip('/')}",
                    "Status": "Enabled",
                    "Filter": {"Prefix": prefix},
                    "Expiration": {"Days": TTL_DAYS + 2},
                }
                for prefix in ("input/", "output/", "tasks/")
            ]
        },
    )


def queue(name):
    sqs = client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(6 * WORKER_TIMEOUT),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_ATTEMPTS)}),
        },
    )["QueueUrl"]
    return url, dlq_url


def main():
    names = {"TABLE_NAME": f"{STACK}-tasks", "BUCKET_NAME": f"{STACK}-blobs-{ACCOUNT}"}
    table(names["TABLE_NAME"])
    bucket(names["BUCKET_NAME"])
    for cls in ("high", "normal", "low"):
        url, dlq = queue(f"{STACK}-{cls}")
        names[f"QUEUE_URL_{cls.upper()}"] = url
        names[f"DLQ_URL_{cls.upper()}"] = dlq
    for key, value in names.items():
        print(f"export {key}={value}")


if __name__ == "__main__":
    sys.exit(main())
