/*
 * filetype — a content type guessed from a file name's extension.
 *
 * Owns: the small table of extensions producers commonly attach.
 * Never: looks at file contents; an unknown extension is
 * application/octet-stream.
 */
#ifndef MAILSPOOL_FILETYPE_H
#define MAILSPOOL_FILETYPE_H

/* Returns a static string. name may be NULL. */
const char *filetype_guess(const char *name);
/* The part of path after the last '/', or path itself. */
const char *filetype_basename(const char *path);

#endif
