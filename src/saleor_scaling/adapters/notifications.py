"""SNS: a notice for every scaling action and every promoted model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
else:
    SNSClient = Any

MAX_SUBJECT_LENGTH = 100


class SnsNotifier:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def notify(self, subject: str, body: dict[str, Any]) -> None:
        if not self._topic_arn:
            return
        # SNS refuses subjects over 100 characters or with line breaks.
        clean_subject = " ".join(subject.split())[:MAX_SUBJECT_LENGTH]
        self._client.publish(
            TopicArn=self._topic_arn,
            Subject=clean_subject,
            Message=json.dumps(body, indent=2, sort_keys=True, default=str),
        )
