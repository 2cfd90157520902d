/* Which language a text is in, roughly, and the espeak-ng voice that reads it.
 * Pure and deterministic: the planner stores the answer in plan.json. */
#ifndef REEL_RENDER_LANG_H
#define REEL_RENDER_LANG_H

#include <stddef.h>

/* Guesses the language of UTF-8 text and returns its code ("en", "fr", "de",
 * "es", "it", "pt", "nl", "ru", "uk", "el", "ar", "fa", "he", "hi", "th",
 * "zh", "ja", "ko"); "en" when there is no evidence. Scripts decide first
 * (kana means Japanese, Hangul Korean, Han alone Chinese, Cyrillic Russian or,
 * with і ї є ґ, Ukrainian, ...); Latin text is scored by common short words
 * and by letters only some languages use (ç œ, ä ö ü ß, ñ ¿ ¡, ã õ, ...).
 * Reads at most the first REEL_LANG_SAMPLE_BYTES bytes; invalid UTF-8 bytes
 * are skipped. Never NULL. */
#define REEL_LANG_SAMPLE_BYTES 16384
const char *reel_lang_detect(const char *text);

/* The espeak-ng voice for a language code from reel_lang_detect ("fr" ->
 * "fr-fr", "zh" -> "cmn", ...); "en-us" for anything else. Never NULL. */
const char *reel_lang_voice(const char *lang);

/* Whether s can be given to espeak-ng -v: 1 to 64 characters of A-Z a-z 0-9
 * - _ + / (a voice name such as "fr-fr", "en-us+f3" or "roa/fr"; the same rule
 * as reeld's --check-config). */
int reel_lang_voice_name_ok(const char *s);

#endif
