"""The transparency log's tree at scale (issue: organisations, "Scale"): append rate, and the
time of an inclusion and a consistency proof, at 100,000 and 1,000,000 leaves in the same run.

    python -m bench.translog [--sizes 100000,1000000]

The server keeps `crypto.merkle.MerkleTree` in memory (every complete subtree cached), so an append
costs O(log n) hashes and a proof O(log^2 n) at worst; the goal is a proof in <= 5 ms, flat as the
log grows 10x. Each proof figure is the mean over 200 random proofs (verification included).
"""

from __future__ import annotations

import argparse
import random
import time

from crypto.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion_hash


def measure(size: int, rng: random.Random) -> dict[str, float]:
    tree = MerkleTree()
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(size)]
    start = time.perf_counter()
    for h in leaves:
        tree.append_leaf_hash(h)
    append_s = time.perf_counter() - start
    root = tree.root()
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        i = rng.randrange(size)
        verify_inclusion_hash(leaves[i], i, size, tree.inclusion_proof(i, size), root)
    inclusion_ms = (time.perf_counter() - start) / n * 1000
    start = time.perf_counter()
    for _ in range(n):
        old = rng.randrange(1, size)
        verify_consistency(old, size, tree.root(old), root, tree.consistency_proof(old, size))
    consistency_ms = (time.perf_counter() - start) / n * 1000
    return {
        "appends_per_s": size / append_s,
        "inclusion_ms": inclusion_ms,
        "consistency_ms": consistency_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args(argv)
    rng = random.Random(7)
    head = f"{'leaves':>10} {'appends/s':>12} {'inclusion ms':>13} {'consistency ms':>15}"
    print(head + "  goal <= 5 ms")
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, rng)
        ok = "ok" if max(r["inclusion_ms"], r["consistency_ms"]) <= 5 else "OVER"
        print(
            f"{size:>10} {r['appends_per_s']:>12.0f} {r['inclusion_ms']:>13.3f} "
            f"{r['consistency_ms']:>15.3f}  {ok}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
