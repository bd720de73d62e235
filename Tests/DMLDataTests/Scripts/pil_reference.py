#!/usr/bin/env python3
"""Writes test images of every kind into FOLDER with PIL, and beside each the pixels PIL decodes
(NAME.expected: a line "width height channels", then the raw bytes), for the decoder tests.
PNG decodes must match exactly, JPEG ones within decoder tolerance. Kinds PIL does not decode the
way dml documents (16-bit samples: their high byte) carry dml's documented value instead."""
import io
import struct
import sys
from PIL import Image

folder = sys.argv[1]


def pattern(w, h, channels, seed):
    data = bytearray()
    for y in range(h):
        for x in range(w):
            for c in range(channels):
                data.append((x * 7 + y * 13 + c * 61 + seed * 29 + ((x * y) % 17) * 5) % 256)
    return bytes(data)


def expected(name, image):
    mode = "L" if image.mode in ("L", "LA", "1", "I;16") else "RGB"
    converted = image.convert(mode)
    with open(f"{folder}/{name}.expected", "wb") as f:
        f.write(f"{converted.width} {converted.height} {1 if mode == 'L' else 3}\n".encode())
        f.write(converted.tobytes())


def save(name, image, **options):
    image.save(f"{folder}/{name}", **options)
    with Image.open(f"{folder}/{name}") as reread:
        reread.load()
        expected(name, reread)


rgb = Image.frombytes("RGB", (37, 23), pattern(37, 23, 3, 1))
grey = Image.frombytes("L", (29, 31), pattern(29, 31, 1, 2))
save("rgb.png", rgb)
save("grey.png", grey)
save("rgba.png", Image.frombytes("RGBA", (17, 19), pattern(17, 19, 4, 3)))
save("grey-alpha.png", Image.frombytes("LA", (13, 11), pattern(13, 11, 2, 4)))
save("palette.png", rgb.convert("P", palette=Image.ADAPTIVE, colors=16))
save("rgb.jpg", rgb, quality=92)
save("grey.jpg", grey, quality=92)
save("progressive.jpg", rgb, quality=90, progressive=True)
save("rgb444.jpg", rgb, quality=95, subsampling=0)
# 16-bit grey: dml keeps the high byte of each sample.
values = [(i * 997) % 65536 for i in range(23 * 9)]
deep = Image.new("I;16", (23, 9))
deep.frombytes(struct.pack(f"<{len(values)}H", *values))
deep.save(f"{folder}/grey16.png")
with open(f"{folder}/grey16.png.expected", "wb") as f:
    f.write(b"23 9 1\n" + bytes(v >> 8 for v in values))
# EXIF orientation 6 (rotate 90° clockwise to display): PIL's exif_transpose gives the display.
exif = Image.Exif()
exif[0x0112] = 6
rgb.save(f"{folder}/rotated.jpg", quality=92, exif=exif.tobytes())
with Image.open(f"{folder}/rotated.jpg") as reread:
    from PIL import ImageOps
    expected("rotated.jpg", ImageOps.exif_transpose(reread))
# CMYK: refused by dml.
Image.frombytes("CMYK", (8, 8), pattern(8, 8, 4, 5)).save(f"{folder}/cmyk.jpg", quality=90)
print("ok")
