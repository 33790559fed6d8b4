"""One adapter per AWS service. Each takes a boto3 client in its constructor, so tests
pass a moto-backed client, and each enforces AWS's real limits itself (moto is more
lenient than AWS: it accepts desired capacity above MaxSize and metrics of any age)."""
