#!/bin/sh
# Regenerate the gRPC code in chatgate/transports/protos from its .proto files.
# Needs grpcio-tools (in the test extra). The generated files are committed.
set -eu
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. --grpc_python_out=. \
    chatgate/transports/protos/*.proto
