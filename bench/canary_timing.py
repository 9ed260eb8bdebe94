"""Does a canary read take as long as a real read? (Indistinguishability by timing.)

Sets up N projects, each with one real secret and one canary of the same shape,
and one machine per project granted both. Then, alternating, it times the FIRST
read of each (the only read of a canary that ever answers 200: it freezes the
project) against a first read of a real secret in a fresh project. Prints the
distributions and the median ratio. Run: .venv/bin/python bench/canary_timing.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import Api, Machine, Server, init_and_unseal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(
            f"sqlite:///{tmp}/c.db", Path(tmp) / "data", env={"SIKKER_AUTH_LOCKOUT_FAILURES": "100000"}
        ).start()
        try:
            _, token = init_and_unseal(server.url)
            root = Api(server.url, token)
            vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
            real_ms, canary_ms = [], []
            for i in range(args.pairs):
                for kind, out in (("real", real_ms), ("canary", canary_ms)):
                    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": f"{kind}{i}"})["id"]
                    if kind == "real":
                        sid = root.ok(
                            "POST",
                            f"/api/projects/{project}/secrets",
                            {"name": "API_TOKEN", "value": "sk_live_" + "x" * 32},
                        )["id"]
                    else:
                        sid = root.ok(
                            "POST",
                            f"/api/projects/{project}/canaries",
                            {"name": "API_TOKEN", "looksLike": "api-token"},
                        )["id"]
                    enroll = root.ok(
                        "POST",
                        f"/api/vaults/{vault}/enrollment-tokens",
                        {"projectIds": [project], "secretIds": [sid]},
                    )["token"]
                    machine = Machine.enroll(server, vault, enroll)
                    machine.request("GET", "/v1/secrets")  # warm the connection path alike
                    start = time.perf_counter()
                    status = machine.request("GET", f"/v1/secret/{sid}").status_code
                    out.append((time.perf_counter() - start) * 1000)
                    assert status == 200, status
        finally:
            server.stop()

    def summary(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        return (
            f"{name:7s} n={len(xs)} median {statistics.median(xs):6.2f} ms  p10 {xs[len(xs) // 10]:6.2f}"
            f"  p90 {xs[len(xs) * 9 // 10]:6.2f}  stdev {statistics.stdev(xs):5.2f}"
        )

    print(summary("real", real_ms))
    print(summary("canary", canary_ms))
    print(f"median canary / real: {statistics.median(canary_ms) / statistics.median(real_ms):.2f}")


if __name__ == "__main__":
    main()
