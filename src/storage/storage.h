/* Artifact storage: where finished videos live and how clients reach them. A
 * table of function pointers per backend (local disk now; S3 and GCS next),
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
};

/* Local-disk storage under root. Download URLs point at public_base_url +
 * "/v1/files/{job_id}/{name}", signed with key (see storage/url_signer.h). */
int reel_storage_open_local(const char *root, const char *public_base_url, const unsigned char *signing_key,
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

/* Builds "{prefix}/{YYYY-MM}/{job_id}/{name}" for a job created at created_ms. */
char *reel_storage_key(const char *prefix, int64_t created_ms, const char *job_id, const char *name);

#endif
