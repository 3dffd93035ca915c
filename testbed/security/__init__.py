"""Transport security of the bench's gRPC calls (docs/security.md).

- `roles`: who a peer is (the node id and role its certificate carries), which roles
  may call which method, and the server interceptor that enforces it;
- `credentials`: the one place every daemon and client gets its gRPC credentials and
  channels from (mutual TLS when `security.grpc_tls` resolves to on, else plaintext);
- `certs`: the bench's CA and one certificate per node (`testbed certs`). Only this
  module needs `cryptography` (the coordinator extra); a board reads PEM files only.

This package's `__init__` imports nothing, so a board never loads `certs`.
"""
