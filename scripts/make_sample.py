"""Rebuild kwta/sample/cifar10-sample.tar.gz from the full JPEG copy of CIFAR-10.

Usage: python scripts/make_sample.py PATH/TO/cifar10-jpeg.tar.gz

Takes the first 100 test and 50 train images of each class (by file name), byte
for byte, so the sample's pixels are exactly the full copy's.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

PER_CLASS = {"test": 100, "train": 50}
OUT = Path(__file__).resolve().parents[1] / "kwta" / "sample" / "cifar10-sample.tar.gz"


def main(src: str) -> None:
    chosen: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    with tarfile.open(src, "r:gz") as tf:
        for m in tf:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 3 or parts[0] not in PER_CLASS:
                continue
            f = tf.extractfile(m)
            assert f is not None
            chosen.setdefault((parts[0], parts[1]), []).append((m.name, f.read()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(OUT, "w:gz") as out:
        for (split, _cls), files in sorted(chosen.items()):
            for name, data in sorted(files)[: PER_CLASS[split]]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0
                out.addfile(info, io.BytesIO(data))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
