// tests/test_jpeg.h — writing JPEG fixtures with libjpeg for the image and prep tests.
#pragma once
#include "data/image.h"

// Writes img (RGB) as a JPEG of the given quality, grey (from the red channel) when `grey`; 0 on success.
int test_write_jpeg(const char *path, const Image *img, int grey, int quality);
