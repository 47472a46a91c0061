// Every file of this target sees the shared test support (the binary runner `CLI`).
@_exported import KVTestSupport
