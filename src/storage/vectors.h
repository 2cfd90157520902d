/* Entry points of `reel-vectors`, the signing conformance runner:
 *   reel-vectors aws CASE_DIR...   AWS SigV4 cases (layout of tests/vectors/aws-sigv4/)
 *   reel-vectors gcs FILE.json     GCS V4 cases (signingV4Tests and postPolicyV4Tests)
 *   reel-vectors presign-s3 ...    one presigned S3 URL (see below)
 * Each prints a line per failing case and ends with "N passed, M failed";
 * it returns 0 only when every case passed. */
#ifndef REEL_STORAGE_VECTORS_H
#define REEL_STORAGE_VECTORS_H

int reel_vectors_aws(int argc, char **argv); /* argv[0] is the first case directory */
int reel_vectors_gcs(int argc, char **argv); /* argv[0] is the JSON file (service-account.json beside it) */
/* reel-vectors presign-s3 --endpoint URL --region R --bucket B --key K --method GET|PUT
 *   --access-key A --secret S --time UNIX --expires N [--virtual-hosted] [--session-token T]
 *   [--header 'Name: value']...: prints one presigned S3 URL (the boto3 cross-check).
 * argv[0] is the first option; returns 0, 1 when signing fails, 2 on a usage error. */
int reel_vectors_presign_s3(int argc, char **argv);
/* reel-vectors sign-gcs --key FILE --bucket B --object O --method GET|PUT|POST --time UNIX --expires N
 *                       [--content-type T] [--endpoint URL]
 * prints one V4-signed URL made with reel's upload/delivery API (storage/gcs_sign.h):
 * GET = download, PUT = upload, POST = start of a resumable upload. argv[0] is the
 * first option; returns 0, or 2 on bad usage or a signing error (message on stderr). */
int reel_vectors_sign_gcs(int argc, char **argv);

#endif
