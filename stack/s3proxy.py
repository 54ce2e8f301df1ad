"""S3Proxy (org.gaul:s3proxy from Maven Central, `make jars`): a real S3 server over a local folder, on loopback,
for the object-storage tests and for trying the s3a:// profile on one machine (README "Object storage").

    .venv/bin/python -m stack.s3proxy --bucket chat-lake

starts it on a free port (or --port), creates the bucket, writes an AWS credentials file (0600) and prints the
settings a chat process needs; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from config import settings
from config.object_store import parse_object_location
from config.private import private_dir
from stack.broker import free_port, java_bin, port_open, write_private_file
from stack.processes import spawn


class S3ProxyError(RuntimeError):
    pass


class S3Proxy:
    """One S3Proxy JVM serving the buckets under `home/buckets` (a bucket is a folder there) at
    http://127.0.0.1:`port`, with one access key and secret (AWS signature v2 or v4)."""

    def __init__(self, home: Path, port: int | None = None, jars: Path | None = None, heap: str = "96m"):
        self.home = Path(home)
        self.port = port or free_port()
        self.jars = Path(jars) if jars else settings.load().jars_dir / "s3proxy"
        self.heap = heap
        self.buckets = self.home / "buckets"
        self.log_file = self.home / "s3proxy.log"
        self.credentials_file = self.home / "credentials"
        self.access_key = "chat-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The settings a chat process needs to use this server (the credentials through the file)."""
        return {
            "CHAT_S3_ENDPOINT": self.endpoint,
            "CHAT_S3_PATH_STYLE": "on",
            "CHAT_S3_REGION": "us-east-1",
            "CHAT_S3_CREDENTIALS_FILE": str(self.credentials_file),
        }

    def create_bucket(self, name: str) -> None:
        parse_object_location(f"s3a://{name}", "bucket")  # the same name rules as the settings
        private_dir(self.home)  # the objects are the chat's data: this user's alone, as DATA_DIR is
        (self.buckets / name).mkdir(parents=True, exist_ok=True)

    def _classpath(self) -> str:
        if not any(self.jars.glob("s3proxy-*.jar")):
            raise S3ProxyError(f"no S3Proxy jars in {self.jars}: run `make jars` first")
        return str(self.jars / "*")

    def start(self, timeout_s: float = 60.0) -> None:
        private_dir(self.home)
        self.buckets.mkdir(exist_ok=True)
        write_private_file(
            self.credentials_file,
            f"[default]\naws_access_key_id = {self.access_key}\naws_secret_access_key = {self.secret_key}\n",
        )
        config = self.home / "s3proxy.properties"
        write_private_file(
            config,
            "\n".join(
                [
                    "# written by stack/s3proxy.py",
                    f"s3proxy.endpoint={self.endpoint}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={self.access_key}",
                    f"s3proxy.credential={self.secret_key}",
                    # jclouds' `filesystem` provider keeps S3A's directory markers as folders (filesystem-nio2
                    # stores them as files, and Delta's log directory then cannot be made)
                    "jclouds.provider=filesystem",
                    f"jclouds.filesystem.basedir={self.buckets}",
                    "",
                ]
            ),
        )
        if port_open("127.0.0.1", self.port):
            raise S3ProxyError(f"port {self.port} is already in use")
        argv = [java_bin(), f"-Xmx{self.heap}", "-cp", self._classpath(), "org.gaul.s3proxy.Main"]
        self.process = spawn([*argv, "--properties", str(config)], self.log_file)
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise S3ProxyError(f"S3Proxy exited with code {self.process.returncode}; see {self.log_file}")
            if time.monotonic() > deadline:
                raise S3ProxyError(f"S3Proxy did not listen within {timeout_s:.0f}s; see {self.log_file}")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 15.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.s3proxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=settings.load().data_dir / "s3proxy")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--bucket", default="chat-lake")
    args = parser.parse_args(argv)
    proxy = S3Proxy(args.home, args.port)
    proxy.create_bucket(args.bucket)
    proxy.start()
    print(f"s3proxy: {proxy.endpoint}, bucket {args.bucket} in {proxy.buckets}; the chat's settings:", flush=True)
    for name, value in proxy.env().items():
        print(f"  export {name}={value}")
    print(
        f"  export CHAT_WAREHOUSE_DIR=s3a://{args.bucket}/warehouse CHAT_CHECKPOINT_DIR=s3a://{args.bucket}/checkpoints"
    )
    try:
        while proxy.process is not None and proxy.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
