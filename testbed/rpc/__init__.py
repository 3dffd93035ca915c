"""Generated gRPC/protobuf code (see tools/gen_proto.py)."""
