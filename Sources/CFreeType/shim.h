// FreeType 2 (Debian's libfreetype-dev): renders the text of plots from a TrueType font.
#include <ft2build.h>
#include FT_FREETYPE_H
