#!/usr/bin/env python3
"""Makes icons/icon.ico, the Windows icon, from the app's PNG icons: each
PNG is stored as is (an ICO may hold PNG images since Windows Vista), so
nothing is resampled and no image tool is needed."""
import struct
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[2] / "icons"
SIZES = [("32x32.png", 32), ("128x128.png", 128), ("256x256.png", 256)]


def main() -> None:
    images = []
    for name, size in SIZES:
        data = (ICONS / name).read_bytes()
        width, height = struct.unpack(">II", data[16:24])
        if data[:8] != b"\x89PNG\r\n\x1a\n" or (width, height) != (size, size):
            sys.exit(f"{ICONS / name} is not a {size}x{size} PNG")
        images.append((size, data))
    out = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    for size, data in images:
        # Width and height 0 mean 256; 1 plane, 32 bits per pixel.
        out += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    out += b"".join(data for _, data in images)
    (ICONS / "icon.ico").write_bytes(out)
    print(ICONS / "icon.ico")


if __name__ == "__main__":
    main()
