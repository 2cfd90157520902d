/* Artifact storage: where finished videos live and how clients reach them. A
 * table of function pointers per backend (local disk, S3-compatible, GCS),
 * chosen in reel.yaml only. Keys look like "{prefix}/{YYYY-MM}/{job_id}/final_video.mp4". */
#ifndef REEL_STORAGE_H
#define REEL_STORAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct reel_storage reel_storage;

typedef struct {
  const char *name;
  /* Stores the file at local_path under key (the file may be moved away).
   * On success *uri is a new heap string naming the object (file://, s3://,
   * gs://) that reveals no server path; *gcs_uri is set for GCS only. On
   * failure err says why (no secret, no signed URL, no server path). */
  int (*put_file)(reel_storage *st, const char *key, const char *local_path, char **uri, char **gcs_uri, char *err,
                  size_t errlen);
  /* Makes a download URL for key valid until expires_at (unix seconds). job_id and
   * name identify the object for URLs that point back at reeld. */
  int (*download_url)(reel_storage *st, const char *key, const char *job_id, const char *name,
                       int64_t expires_at, char **url);
  /* Opens key for reading (backends that serve through reeld): fd to close. REEL_ENOTFOUND if gone. */
  int (*open_read)(reel_storage *st, const char *key, int *fd);
  /* Readiness: 0, or an error with a message in err. */
  int (*check)(reel_storage *st, char *err, size_t errlen);
  void (*close)(reel_storage *st);
} reel_storage_ops;

struct reel_storage {
  const reel_storage_ops *ops;
  /* download_url makes public URLs that never expire (GCS with signed_urls
   * false): /v1/jobs/{id}/artifact then answers expires_in 0. */
  int public_urls;
};

/* Local-disk storage under root. Download URLs are paths on reeld itself,
 * "/v1/files/{job_id}/{name}?expires=&signature=", signed with key (see
 * storage/url_signer.h); the API makes them absolute with the base URL the
 * client used (api/origin.h). */
int reel_storage_open_local(const char *root, const unsigned char *signing_key,
                            size_t key_len, reel_storage **out, char *err, size_t errlen);
/* Settings of the S3-compatible backend (from service.storage in reel.yaml). */
typedef struct {
  const char *endpoint;  /* NULL: https://s3.REGION.amazonaws.com */
  const char *region;
  const char *bucket;
  int path_style;
  const char *access_key_id, *secret_access_key, *session_token;
  size_t multipart_threshold, multipart_part;
  int multipart_parallel, upload_attempts;
} reel_storage_s3_settings;

/* S3-compatible storage. Uploads (put_file) and check do network I/O: call
 * them from worker threads, never the event loop. Download URLs are presigned
 * S3 URLs. Messages never contain a secret or a signature. */
int reel_storage_open_s3(const reel_storage_s3_settings *settings, reel_storage **out, char *err, size_t errlen);

/* Settings of the Google Cloud Storage backend (from service.storage in reel.yaml). */
typedef struct {
  const char *bucket;
  const char *endpoint;          /* NULL: https://storage.googleapis.com; "http://127.0.0.1:4443" for a fake server */
  const char *credentials_file;  /* service-account JSON key: signs every request (V4), no OAuth token */
  int signed_urls;               /* 1: V4-signed download URLs; 0: public URLs (the bucket must allow reading) */
  size_t resumable_threshold;    /* files of this size or more use a resumable upload */
  size_t resumable_chunk;        /* bytes per resumable chunk, rounded down to a multiple of 256 KiB */
  int upload_attempts;           /* tries per request (or per chunk) on transient failures */
} reel_storage_gcs_settings;

/* Google Cloud Storage through the XML API with V4-signed URLs (see
 * storage/gcs_sign.h). Uploads (put_file) and check do network I/O: call them
 * from worker threads, never the event loop; download_url only signs. *uri
 * and *gcs_uri are "gs://bucket/key". Messages never contain key material, a
 * signature or a resumable session URI. REEL_ECONFIG (with a message naming
 * the service.storage key) when the key file, bucket or endpoint is unusable. */
int reel_storage_open_gcs(const reel_storage_gcs_settings *settings, reel_storage **out, char *err, size_t errlen);

/* Builds "{prefix}/{YYYY-MM}/{job_id}/{name}" for a job created at created_ms. */
char *reel_storage_key(const char *prefix, int64_t created_ms, const char *job_id, const char *name);

#endif
