/*
 * filetype — content types from file name extensions.
 *
 * Owns: the extension table. Never: opens files.
 */
#include "filetype.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *ext;
    const char *type;
} filetype_table[] = {
    {"pdf", "application/pdf"},
    {"txt", "text/plain"},
    {"log", "text/plain"},
    {"csv", "text/csv"},
    {"htm", "text/html"},
    {"html", "text/html"},
    {"xml", "application/xml"},
    {"json", "application/json"},
    {"ics", "text/calendar"},
    {"eml", "message/rfc822"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"doc", "application/msword"},
    {"xls", "application/vnd.ms-excel"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
};

const char *filetype_guess(const char *name)
{
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (dot == NULL || dot[1] == '\0' || strchr(dot, '/') != NULL)
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof filetype_table / sizeof filetype_table[0]; i++)
        if (strcasecmp(dot + 1, filetype_table[i].ext) == 0)
            return filetype_table[i].type;
    return "application/octet-stream";
}

const char *filetype_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
