"""Write small test clips with PyAV: ``python tests/make_clips.py PATH:FRAMES[:FPS[:WxH]] …``.

Each clip is MPEG-4 Part 2, random pixels, 16 fps and 64×48 unless given. The rule case
files (tests/rules/cases/LRC525…LRC530) call it from their ``setup``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_clip(path: Path, frames: int, fps: int = 16, size: tuple[int, int] = (64, 48)) -> Path:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(frames * 1000 + fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def main(argv: list[str]) -> int:
    for spec in argv:
        path, *rest = spec.split(":")
        frames = int(rest[0]) if rest else 9
        fps = int(rest[1]) if len(rest) > 1 else 16
        size = tuple(int(x) for x in rest[2].split("x")) if len(rest) > 2 else (64, 48)
        write_clip(Path(path), frames, fps, size)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
