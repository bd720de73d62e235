// Image files through Debian's well-kept libraries: JPEG with libjpeg-turbo's TurboJPEG API
// (libturbojpeg0-dev), EXIF orientation with libexif, PNG with libpng (decoding through its
// low-level API, whose errors longjmp, caught here), resampling with FFmpeg's swscale.
// Every call returns 0 on success, or 1 with a message in `error`.
#ifndef DML_IMAGE_IO_H
#define DML_IMAGE_IO_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int width, height;
  int channels;  // 1 (grey) or 3 (RGB)
  uint8_t *pixels;  // height × width × channels, row-major, interleaved; free with dml_image_free
} dml_image;

// Decodes a JPEG or PNG file's bytes. JPEG: baseline or progressive, grey or colour, EXIF
// orientation applied; CMYK and YCCK are refused by name; a truncated file is an error. PNG: grey,
// grey+alpha, RGB, RGBA, palette, 1 to 16 bits, interlaced; alpha is dropped (as PIL's
// convert("RGB") does), 16-bit samples keep their high byte, palettes become RGB.
int dml_image_decode(const uint8_t *data, size_t size, dml_image *out, char *error, size_t capacity);
void dml_image_free(dml_image *image);

// A JPEG's size as displayed (after its EXIF orientation) from its header alone (0 if the bytes
// are not a readable JPEG header).
int dml_jpeg_size(const uint8_t *data, size_t size, int *width, int *height);

// Decodes a JPEG at the smallest of libjpeg-turbo's scales 1/8, 1/4, 1/2, 1 at which it is still
// at least min_width × min_height once oriented (DCT scaling: much less work for small outputs);
// other files decode at full size. Errors as dml_image_decode.
int dml_image_decode_scaled(const uint8_t *data, size_t size, int min_width, int min_height, dml_image *out, char *error, size_t capacity);

// The EXIF orientation (1-8) of a JPEG's bytes, or 1 when it has none.
int dml_jpeg_orientation(const uint8_t *data, size_t size);

// Encodes 8-bit pixels (channels 1 or 3) as PNG into a malloc'd buffer (*png, *png_size).
int dml_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **png, size_t *png_size, char *error, size_t capacity);
// Encodes 8-bit pixels (channels 1 or 3) as JPEG at `quality` (1-100) into a malloc'd buffer.
int dml_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality, uint8_t **jpeg, size_t *jpeg_size, char *error, size_t capacity);
void dml_buffer_free(void *buffer);

// Resamples 8-bit interleaved pixels to out_width × out_height (swscale, bilinear: averaging
// when shrinking); 1 if swscale refuses the sizes.
int dml_image_resize(const uint8_t *pixels, int width, int height, int channels, uint8_t *out, int out_width, int out_height);
#endif
