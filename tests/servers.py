"""Real servers on 127.0.0.1 for tests: an S3 API (moto) and a webhook receiver (http.server).

Both listen on a free loopback port chosen by the OS, answer only this machine, and stop at
the end of their ``with`` block or fixture.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: Credentials and settings for the moto server; nothing here reaches AWS. The metadata
#: service is disabled so botocore never looks for an instance role off this machine.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
}


@dataclass
class MotoS3:
    """A running moto S3 server: its endpoint and a boto3 client for setting up buckets."""

    endpoint: str
    client: Any

    def upload_folder(self, folder: Path, bucket: str, prefix: str, acl: str = "private") -> list[str]:
        """Upload every file under ``folder`` as ``prefix/<relative path>``; the keys, sorted."""
        self.make_bucket(bucket)
        keys = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}"
            self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ACL=acl)
            keys.append(key)
        return keys

    def make_bucket(self, bucket: str) -> None:
        existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            self.client.create_bucket(Bucket=bucket)


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    """Start moto's S3 API in a thread on 127.0.0.1 (a real HTTP server speaking the S3 protocol)."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )
    try:
        yield MotoS3(endpoint, client)
    finally:
        server.stop()


@dataclass
class Received:
    """What the webhook receiver got: one entry per request."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests]


@contextmanager
def webhook_receiver(status: int = 200, answer: bytes = b"ok") -> Iterator[tuple[str, Received]]:
    """An HTTP server on 127.0.0.1 that records each POST and answers ``status`` (Slack answers 200 ``ok``)."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length).decode("utf-8")}
            )
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret-token", received
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
