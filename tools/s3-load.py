#!/usr/bin/env python3
"""Fill an S3 endpoint (moto_server from tools/services.py) with test objects, through boto3.

    tools/s3-load.py upload BUCKET DIR [--prefix P] [--pattern '*.nc'] [--recursive] [--public]
    tools/s3-load.py decoys BUCKET --prefix P [--count 1100] [--name 'decoy-{i:05d}.txt'] [--public]

`upload` puts the files of DIR matching PATTERN (with --recursive, of its subdirectories too,
keeping their relative paths) under PREFIX; `decoys` puts COUNT tiny keys (a few bytes each)
under PREFIX, so that a listing needs several ListObjectsV2 pages (1000 keys each). Both
create BUCKET when it does not exist; --public makes it public-read (for anonymous access).
Prints one line: how many keys were written and where.

The endpoint is --endpoint-url, else $ZARRMOUNT_S3_ENDPOINT (tools/services.py env); credentials
come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default `testing`), region us-east-1.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # tools/, for _bootstrap
import _bootstrap  # noqa: E402
_REPO = _bootstrap.use_repo_venv(__file__)

import argparse
import fnmatch
from concurrent.futures import ThreadPoolExecutor


def client(endpoint):
    import boto3
    from botocore.config import Config
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                      max_pool_connections=16))


def ensure_bucket(s3, bucket, public):
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    if public:
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")


def join_key(prefix, name):
    if not prefix:
        return name
    return prefix.rstrip("/") + "/" + name


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("upload", "decoys"):
        p = sub.add_parser(name)
        p.add_argument("bucket")
        if name == "upload":
            p.add_argument("dir")
            p.add_argument("--pattern", default="*")
            p.add_argument("--recursive", action="store_true")
        else:
            p.add_argument("--count", type=int, default=1100)
            p.add_argument("--name", default="decoy-{i:05d}.txt", help="key name template (default decoy-{i:05d}.txt)")
        p.add_argument("--prefix", default="")
        p.add_argument("--public", action="store_true", help="make the bucket public-read")
        p.add_argument("--endpoint-url", default=os.environ.get("ZARRMOUNT_S3_ENDPOINT"))
        p.add_argument("--jobs", type=int, default=8)
    args = ap.parse_args()
    if not args.endpoint_url:
        ap.error("no --endpoint-url and no $ZARRMOUNT_S3_ENDPOINT (run tools/services.py start)")
    s3 = client(args.endpoint_url)
    ensure_bucket(s3, args.bucket, args.public)

    if args.command == "upload":
        todo = []
        root = os.path.abspath(args.dir)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in sorted(filenames):
                if fnmatch.fnmatchcase(f, args.pattern) and not f.startswith("."):
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    todo.append((os.path.join(dirpath, f), join_key(args.prefix, rel.replace(os.sep, "/"))))
            if not args.recursive:
                break
        if not todo:
            sys.exit("s3-load: no files matching %s in %s" % (args.pattern, args.dir))

        def put(item):
            path, key = item
            with open(path, "rb") as fh:
                s3.put_object(Bucket=args.bucket, Key=key, Body=fh.read())
    else:
        todo = [(None, join_key(args.prefix, args.name.format(i=i))) for i in range(args.count)]

        def put(item):
            _, key = item
            s3.put_object(Bucket=args.bucket, Key=key, Body=("decoy %s\n" % key).encode())

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(put, todo))
    print("s3-load: %d keys in s3://%s/%s" % (len(todo), args.bucket, args.prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
