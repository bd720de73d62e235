#include "image_io.h"
#include <libexif/exif-data.h>
#include <pthread.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <libswscale/swscale.h>

static int fail(char *error, size_t capacity, const char *format, ...) {
  if (error && capacity) {
    va_list args;
    va_start(args, format);
    vsnprintf(error, capacity, format, args);
    va_end(args);
  }
  return 1;
}

void dml_image_free(dml_image *image) {
  if (image && image->pixels) { free(image->pixels); image->pixels = NULL; }
}

void dml_buffer_free(void *buffer) { free(buffer); }

int dml_jpeg_orientation(const uint8_t *data, size_t size) {
  ExifData *exif = exif_data_new_from_data(data, (unsigned int)size);
  if (!exif) return 1;
  int orientation = 1;
  // IFD 0 describes the main image (IFD 1, the thumbnail's, may carry an orientation of its own).
  ExifEntry *entry = exif_content_get_entry(exif->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
  if (entry && entry->format == EXIF_FORMAT_SHORT && entry->components >= 1) {
    int value = exif_get_short(entry->data, exif_data_get_byte_order(exif));
    if (value >= 1 && value <= 8) orientation = value;
  }
  exif_data_unref(exif);
  return orientation;
}

// Applies EXIF orientation `o` (2-8) to an interleaved image, replacing its pixels.
static int orient(dml_image *image, int o) {
  int w = image->width, h = image->height, c = image->channels;
  int transposed = o >= 5;
  int ow = transposed ? h : w, oh = transposed ? w : h;
  uint8_t *out = malloc((size_t)ow * oh * c);
  if (!out) return 1;
  for (int y = 0; y < oh; y++) {
    for (int x = 0; x < ow; x++) {
      int sx, sy;  // the source pixel of output (x, y)
      switch (o) {
        case 2: sx = w - 1 - x; sy = y; break;              // mirrored horizontally
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;      // rotated 180
        case 4: sx = x; sy = h - 1 - y; break;              // mirrored vertically
        case 5: sx = y; sy = x; break;                      // transposed
        case 6: sx = y; sy = h - 1 - x; break;              // rotated 90 clockwise to display
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;      // transversed
        case 8: sx = w - 1 - y; sy = x; break;              // rotated 90 counter-clockwise to display
        default: sx = x; sy = y;
      }
      memcpy(out + ((size_t)y * ow + x) * c, image->pixels + ((size_t)sy * w + sx) * c, c);
    }
  }
  free(image->pixels);
  image->pixels = out;
  image->width = ow;
  image->height = oh;
  return 0;
}

int dml_jpeg_size(const uint8_t *data, size_t size, int *width, int *height) {
  *width = *height = 0;
  if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) return 1;
  tjhandle tj = tjInitDecompress();
  if (!tj) return 1;
  int subsampling, colorspace;
  int rc = tjDecompressHeader3(tj, data, (unsigned long)size, width, height, &subsampling, &colorspace);
  tjDestroy(tj);
  if (rc != 0) return 1;
  // The size as displayed: orientations 5-8 turn the image a quarter.
  if (dml_jpeg_orientation(data, size) >= 5) { int t = *width; *width = *height; *height = t; }
  return 0;
}

static int decode_jpeg_scaled(const uint8_t *data, size_t size, int min_width, int min_height, dml_image *out, char *error, size_t capacity);

static int decode_jpeg(const uint8_t *data, size_t size, dml_image *out, char *error, size_t capacity) {
  return decode_jpeg_scaled(data, size, 0, 0, out, error, capacity);
}

static int decode_jpeg_scaled(const uint8_t *data, size_t size, int min_width, int min_height, dml_image *out, char *error, size_t capacity) {
  tjhandle tj = tjInitDecompress();
  if (!tj) return fail(error, capacity, "cannot start the JPEG decoder");
  int w, h, subsampling, colorspace;
  if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsampling, &colorspace) != 0) {
    fail(error, capacity, "not a readable JPEG: %s", tjGetErrorStr2(tj));
    tjDestroy(tj);
    return 1;
  }
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    tjDestroy(tj);
    return fail(error, capacity, "a %s JPEG: only grey and colour (YCbCr or RGB) JPEGs are read; convert it to RGB first",
      colorspace == TJCS_CMYK ? "CMYK" : "YCCK");
  }
  int channels = colorspace == TJCS_GRAY ? 1 : 3;
  int o = dml_jpeg_orientation(data, size);
  if (w > 0 && h > 0 && (min_width > 0 || min_height > 0)) {
    // The minimum is of the displayed image: orientations 5-8 swap the stored sides.
    if (o >= 5) { int t = min_width; min_width = min_height; min_height = t; }
    // The smallest of the scales 1/8, 1/4, 1/2 (as PIL's draft mode; TurboJPEG's other scales
    // cost more than they save) whose output still covers min_width × min_height.
    static const int denominators[3] = {8, 4, 2};
    for (int i = 0; i < 3; i++) {
      tjscalingfactor f = {1, denominators[i]};
      int sw = TJSCALED(w, f), sh = TJSCALED(h, f);
      if (sw >= min_width && sh >= min_height) { w = sw; h = sh; break; }
    }
  }
  if (w <= 0 || h <= 0 || (size_t)w * (size_t)h > ((size_t)1 << 28)) {
    tjDestroy(tj);
    return fail(error, capacity, "a JPEG of %d x %d pixels is too large", w, h);
  }
  uint8_t *pixels = malloc((size_t)w * h * channels);
  if (!pixels) { tjDestroy(tj); return fail(error, capacity, "out of memory for a %d x %d JPEG", w, h); }
  // A truncated or corrupt file is libjpeg's "warning"; TJFLAG_STOPONWARNING makes it an error.
  int rc = tjDecompress2(tj, data, (unsigned long)size, pixels, w, 0, h, channels == 1 ? TJPF_GRAY : TJPF_RGB,
    TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING);
  if (rc != 0) {
    fail(error, capacity, "a broken JPEG: %s", tjGetErrorStr2(tj));
    free(pixels);
    tjDestroy(tj);
    return 1;
  }
  tjDestroy(tj);
  out->width = w;
  out->height = h;
  out->channels = channels;
  out->pixels = pixels;
  if (o != 1 && orient(out, o) != 0) { dml_image_free(out); return fail(error, capacity, "out of memory"); }
  return 0;
}

int dml_image_decode_scaled(const uint8_t *data, size_t size, int min_width, int min_height, dml_image *out, char *error, size_t capacity) {
  memset(out, 0, sizeof *out);
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return decode_jpeg_scaled(data, size, min_width, min_height, out, error, capacity);
  return dml_image_decode(data, size, out, error, capacity);
}

typedef struct { const uint8_t *data; size_t size, at; } png_reader;

static void read_bytes(png_structp png, png_bytep target, png_size_t count) {
  png_reader *r = png_get_io_ptr(png);
  if (r->at + count > r->size) png_error(png, "the file ends early (truncated)");
  memcpy(target, r->data + r->at, count);
  r->at += count;
}

typedef struct { char message[256]; } png_errors;

static void on_png_error(png_structp png, png_const_charp message) {
  png_errors *e = png_get_error_ptr(png);
  snprintf(e->message, sizeof e->message, "%s", message);
  png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

static int decode_png(const uint8_t *data, size_t size, dml_image *out, char *error, size_t capacity) {
  png_errors errors = {{0}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors, on_png_error, on_png_warning);
  if (!png) return fail(error, capacity, "cannot start the PNG decoder");
  png_infop info = png_create_info_struct(png);
  png_reader reader = {data, size, 0};
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  if (!info) { png_destroy_read_struct(&png, NULL, NULL); return fail(error, capacity, "cannot start the PNG decoder"); }
  if (setjmp(png_jmpbuf(png))) {
    free(pixels);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return fail(error, capacity, "a broken PNG: %s", errors.message[0] ? errors.message : "unreadable");
  }
  png_set_read_fn(png, &reader, read_bytes);
  png_set_user_limits(png, 1 << 16, 1 << 16);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int color = png_get_color_type(png, info);
  if ((size_t)w * (size_t)h > ((size_t)1 << 28)) png_error(png, "the image is too large");
  png_set_expand(png);  // palette to RGB, grey below 8 bits to 8, tRNS to alpha
  png_set_strip_16(png);  // 16-bit samples keep their high byte
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int channels = png_get_channels(png, info);
  if (channels != 1 && channels != 3) png_error(png, "an unexpected channel layout");
  (void)color;
  size_t stride = png_get_rowbytes(png, info);
  if (stride != (size_t)w * channels) png_error(png, "an unexpected row size");
  pixels = malloc(stride * h);
  rows = malloc(sizeof(png_bytep) * h);
  if (!pixels || !rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + y * stride;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  free(rows);
  png_destroy_read_struct(&png, &info, NULL);
  out->width = (int)w;
  out->height = (int)h;
  out->channels = channels;
  out->pixels = pixels;
  return 0;
}

int dml_image_decode(const uint8_t *data, size_t size, dml_image *out, char *error, size_t capacity) {
  memset(out, 0, sizeof *out);
  if (size == 0) return fail(error, capacity, "an empty file (0 bytes)");
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return decode_jpeg(data, size, out, error, capacity);
  static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && memcmp(data, png_signature, 8) == 0) return decode_png(data, size, out, error, capacity);
  return fail(error, capacity, "not a JPEG or PNG image (its first bytes are neither signature)");
}

typedef struct { uint8_t *data; size_t size, capacity; int failed; } png_writer;

static void write_bytes(png_structp png, png_bytep bytes, png_size_t count) {
  png_writer *w = png_get_io_ptr(png);
  if (w->size + count > w->capacity) {
    size_t grown = (w->capacity ? w->capacity * 2 : 65536);
    while (grown < w->size + count) grown *= 2;
    uint8_t *bigger = realloc(w->data, grown);
    if (!bigger) png_error(png, "out of memory");
    w->data = bigger;
    w->capacity = grown;
  }
  memcpy(w->data + w->size, bytes, count);
  w->size += count;
}

static void flush_bytes(png_structp png) { (void)png; }

int dml_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **result, size_t *result_size, char *error, size_t capacity) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) return fail(error, capacity, "cannot encode a %d x %d x %d image", width, height, channels);
  png_errors errors = {{0}};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errors, on_png_error, on_png_warning);
  if (!png) return fail(error, capacity, "cannot start the PNG encoder");
  png_infop info = png_create_info_struct(png);
  // On the heap: what the callbacks change there is still valid after a longjmp.
  png_writer *writer = calloc(1, sizeof *writer);
  if (!writer) { png_destroy_write_struct(&png, &info); return fail(error, capacity, "out of memory"); }
  if (!info || setjmp(png_jmpbuf(png))) {
    free(writer->data);
    free(writer);
    png_destroy_write_struct(&png, &info);
    return fail(error, capacity, "PNG encoding failed: %s", errors.message);
  }
  png_set_write_fn(png, writer, write_bytes, flush_bytes);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
    PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  *result = writer->data;
  *result_size = writer->size;
  free(writer);
  return 0;
}

int dml_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality, uint8_t **result, size_t *result_size, char *error, size_t capacity) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3) || quality < 1 || quality > 100)
    return fail(error, capacity, "cannot encode a %d x %d x %d image at quality %d", width, height, channels, quality);
  tjhandle tj = tjInitCompress();
  if (!tj) return fail(error, capacity, "cannot start the JPEG encoder");
  unsigned char *buffer = NULL;
  unsigned long size = 0;
  int rc = tjCompress2(tj, pixels, width, 0, height, channels == 1 ? TJPF_GRAY : TJPF_RGB, &buffer, &size,
    channels == 1 ? TJSAMP_GRAY : TJSAMP_420, quality, TJFLAG_ACCURATEDCT);
  if (rc != 0) {
    fail(error, capacity, "JPEG encoding failed: %s", tjGetErrorStr2(tj));
    tjDestroy(tj);
    return 1;
  }
  tjDestroy(tj);
  // TurboJPEG's buffer belongs to tjFree; hand the caller a malloc'd copy.
  uint8_t *copy = malloc(size);
  if (!copy) { tjFree(buffer); return fail(error, capacity, "out of memory"); }
  memcpy(copy, buffer, size);
  tjFree(buffer);
  *result = copy;
  *result_size = size;
  return 0;
}

// One swscale context per thread, freed when its thread ends.
static pthread_key_t resize_key;
static pthread_once_t resize_once = PTHREAD_ONCE_INIT;
static void free_context(void *context) { sws_freeContext(context); }
static void make_resize_key(void) { pthread_key_create(&resize_key, free_context); }

int dml_image_resize(const uint8_t *pixels, int width, int height, int channels, uint8_t *out, int out_width, int out_height) {
  // FFmpeg's swscale, bilinear (its filter widens when shrinking, so it averages rather than
  // skips), with full chroma so that RGB stays RGB; one cached context per thread.
  if (width <= 0 || height <= 0 || out_width <= 0 || out_height <= 0 || (channels != 1 && channels != 3)) return 1;
  pthread_once(&resize_once, make_resize_key);
  struct SwsContext *context = pthread_getspecific(resize_key);
  enum AVPixelFormat format = channels == 1 ? AV_PIX_FMT_GRAY8 : AV_PIX_FMT_RGB24;
  context = sws_getCachedContext(context, width, height, format, out_width, out_height, format,
    SWS_BILINEAR | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP | SWS_ACCURATE_RND, NULL, NULL, NULL);
  pthread_setspecific(resize_key, context);
  if (!context) return 1;
  // swscale's vector code may read and write a little past a row's end: it works on copies with
  // room to spare (the cost is small beside the decoding).
  enum { slack = 64 };
  size_t in_size = (size_t)width * height * channels, out_size = (size_t)out_width * out_height * channels;
  uint8_t *source_copy = malloc(in_size + slack), *target_copy = malloc(out_size + slack);
  if (!source_copy || !target_copy) { free(source_copy); free(target_copy); return 1; }
  memcpy(source_copy, pixels, in_size);
  memset(source_copy + in_size, 0, slack);
  const uint8_t *source[4] = {source_copy, NULL, NULL, NULL};
  int sourceStride[4] = {width * channels, 0, 0, 0};
  uint8_t *target[4] = {target_copy, NULL, NULL, NULL};
  int targetStride[4] = {out_width * channels, 0, 0, 0};
  int rc = sws_scale(context, source, sourceStride, 0, height, target, targetStride) == out_height ? 0 : 1;
  if (rc == 0) memcpy(out, target_copy, out_size);
  free(source_copy);
  free(target_copy);
  return rc;
}
