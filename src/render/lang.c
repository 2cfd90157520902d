/* A small language guesser: enough to pick an espeak-ng voice for a prompt.
 * Non-Latin scripts are told apart by the Unicode blocks their letters come
 * from; Latin-script languages by how many of their commonest short words and
 * their own letters appear. It is a heuristic, not a classifier: it is right
 * on ordinary sentences and falls back to English when unsure. */
#include "render/lang.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/utf8.h"

enum { S_LATIN, S_HAN, S_KANA, S_HANGUL, S_CYRILLIC, S_GREEK, S_ARABIC, S_HEBREW, S_DEVANAGARI, S_THAI, S_COUNT };
enum { L_EN, L_FR, L_DE, L_ES, L_IT, L_PT, L_NL, L_LATIN_COUNT };

static const char *const latin_codes[L_LATIN_COUNT] = {"en", "fr", "de", "es", "it", "pt", "nl"};

/* Common short words, lowercase, space-separated with a space at each end. */
static const char *const stop_words[L_LATIN_COUNT] = {
    " the and of to in is it that with on at as for this are was were over from into while they his her its by an"
    " be we you our their not but or up out under through above across ",
    " le la les des du de et est un une dans sur pour pas que qui au aux avec il elle nous vous sous sont ce cette"
    " se ses son sa mais ou où très puis l d qu j n s c lui leur leurs ",
    " der die das und ist nicht ein eine einen einem dem den des mit auf für im sich auch von zu über unter nach"
    " bei wir ihr es am vom zum zur aus wie noch ",
    " el los las del y es un una en con por para que se su sus al lo como pero muy sobre entre hay está están"
    " mientras ",
    " il lo gli della del dei delle e è un una di che non con per sono nel nella sul sulla alla come ma anche si"
    " mentre tra ",
    " o os as do da dos das e é um uma em no na nos nas com por para que não se ao à mais sobre como seu sua"
    " enquanto ",
    " de het een en van is niet op met voor dat die zijn aan bij ook naar uit over wordt nog ",
};


static int script_of(uint32_t c) {
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return S_LATIN;
  if ((c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) || (c >= 0x1E00 && c <= 0x1EFF)) return S_LATIN;
  if ((c >= 0x3040 && c <= 0x30FF) || (c >= 0x31F0 && c <= 0x31FF) || (c >= 0xFF66 && c <= 0xFF9F)) return S_KANA;
  if ((c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF) ||
      (c >= 0x20000 && c <= 0x3FFFF))
    return S_HAN;
  if ((c >= 0xAC00 && c <= 0xD7AF) || (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3130 && c <= 0x318F)) return S_HANGUL;
  if (c >= 0x0400 && c <= 0x052F) return S_CYRILLIC;
  if ((c >= 0x0370 && c <= 0x03FF) || (c >= 0x1F00 && c <= 0x1FFF)) return S_GREEK;
  if ((c >= 0x0600 && c <= 0x06FF) || (c >= 0x0750 && c <= 0x077F) || (c >= 0xFB50 && c <= 0xFDFF) ||
      (c >= 0xFE70 && c <= 0xFEFF))
    return S_ARABIC;
  if (c >= 0x0590 && c <= 0x05FF) return S_HEBREW;
  if (c >= 0x0900 && c <= 0x097F) return S_DEVANAGARI;
  if (c >= 0x0E00 && c <= 0x0E7F) return S_THAI;
  return -1;
}



/* Points a letter gives each Latin-script language that uses it more than the others. */
static void letter_hints(uint32_t c, int score[L_LATIN_COUNT]) {
  switch (reel_utf8_lower_latin1(c)) {
  case 0x153: case 0xE8: case 0xEA: case 0xF9: case 0xEE: case 0xFB: case 0xEB: case 0xEF: case 0xFF:
  case 0xAB: case 0xBB:
    score[L_FR] += 2; break;
  case 0xE4: case 0xF6: case 0xFC: case 0xDF:
    score[L_DE] += 2; break;
  case 0xF1: case 0xBF: case 0xA1:
    score[L_ES] += 2; break;
  case 0xE3: case 0xF5:
    score[L_PT] += 2; break;
  case 0xEC: case 0xF2:
    score[L_IT] += 2; break;
  case 0xE7:
    score[L_FR] += 1, score[L_PT] += 1; break;
  case 0xE1: case 0xED: case 0xF3: case 0xFA:
    score[L_ES] += 1, score[L_PT] += 1; break;
  default: break;
  }
}

static void score_word(const char *w, size_t n, int score[L_LATIN_COUNT]) {
  if (n == 0 || n > 12) return;
  char key[16];
  key[0] = ' ';
  memcpy(key + 1, w, n);
  key[n + 1] = ' ';
  key[n + 2] = '\0';
  for (int l = 0; l < L_LATIN_COUNT; l++)
    if (strstr(stop_words[l], key)) score[l] += 1;
}

const char *reel_lang_detect(const char *text) {
  if (!text) return "en";
  const unsigned char *s = (const unsigned char *)text;
  size_t len = strnlen(text, REEL_LANG_SAMPLE_BYTES);
  int scripts[S_COUNT] = {0}, latin[L_LATIN_COUNT] = {0};
  bool ukrainian = false, persian = false;
  char word[64];
  size_t wn = 0;
  bool word_too_long = false;
  for (size_t i = 0; i <= len;) {
    uint32_t c = 0;
    size_t n = i < len ? reel_utf8_decode_or_replace(s, len, i, &c) : 1;
    int sc = i < len ? script_of(c) : -1;
    if (sc >= 0) scripts[sc]++;
    if (c == 0x456 || c == 0x457 || c == 0x454 || c == 0x491 || c == 0x406 || c == 0x407 || c == 0x404 || c == 0x490)
      ukrainian = true;
    if (c == 0x67E || c == 0x686 || c == 0x698 || c == 0x6AF) persian = true;
    if (sc == S_LATIN) {
      letter_hints(c, latin);
      char buf[4];
      size_t k = reel_utf8_encode(reel_utf8_lower_latin1(c), buf);
      if (wn + k < sizeof word) memcpy(word + wn, buf, k), wn += k;
      else word_too_long = true;
    } else { /* anything else (spaces, apostrophes, digits, other scripts) ends a word */
      if (!word_too_long) score_word(word, wn, latin);
      wn = 0;
      word_too_long = false;
    }
    i += n;
  }
  int best = -1;
  for (int k = 0; k < S_COUNT; k++)
    if (scripts[k] > 0 && (best < 0 || scripts[k] > scripts[best])) best = k;
  if (scripts[S_KANA] > 0 && scripts[S_KANA] + scripts[S_HAN] >= scripts[best]) return "ja";
  switch (best) {
  case S_HAN: return "zh";
  case S_HANGUL: return "ko";
  case S_CYRILLIC: return ukrainian ? "uk" : "ru";
  case S_GREEK: return "el";
  case S_ARABIC: return persian ? "fa" : "ar";
  case S_HEBREW: return "he";
  case S_DEVANAGARI: return "hi";
  case S_THAI: return "th";
  default: break;
  }
  int top = L_EN; /* ties go to the earlier language: English first */
  for (int l = 1; l < L_LATIN_COUNT; l++)
    if (latin[l] > latin[top]) top = l;
  return latin_codes[top];
}

const char *reel_lang_voice(const char *lang) {
  static const char *const map[][2] = {
      {"en", "en-us"}, {"fr", "fr-fr"}, {"de", "de"}, {"es", "es"}, {"it", "it"}, {"pt", "pt"},
      {"nl", "nl"},    {"ru", "ru"},    {"uk", "uk"}, {"el", "el"}, {"ar", "ar"}, {"fa", "fa"},
      {"he", "he"},    {"hi", "hi"},    {"th", "th"}, {"zh", "cmn"}, {"ja", "ja"}, {"ko", "ko"},
  };
  for (size_t i = 0; lang && i < sizeof map / sizeof *map; i++)
    if (strcmp(map[i][0], lang) == 0) return map[i][1];
  return "en-us";
}

int reel_lang_voice_name_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
          c == '+' || c == '/'))
      return 0;
  }
  return 1;
}
