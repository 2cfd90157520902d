/* reel-vectors: runs the signing conformance cases (AWS SigV4, GCS V4) against
 * reel's signers, and signs single URLs for cross-checks with the official SDKs. */
#include <stdio.h>
#include <string.h>

#include "storage/vectors.h"

static const char usage[] =
    "usage: reel-vectors aws CASE_DIR...          run AWS SigV4 cases (tests/vectors/aws-sigv4 layout)\n"
    "       reel-vectors gcs FILE.json            run GCS V4 signingV4Tests and postPolicyV4Tests\n"
    "       reel-vectors presign-s3 OPTIONS...    print a presigned S3 URL (see --help of the subcommand)\n"
    "       reel-vectors sign-gcs OPTIONS...      print a V4-signed GCS URL\n";

int main(int argc, char **argv) {
  if (argc < 3) {
    fputs(usage, stderr);
    return 2;
  }
  if (strcmp(argv[1], "aws") == 0) return reel_vectors_aws(argc - 2, argv + 2);
  if (strcmp(argv[1], "gcs") == 0) return reel_vectors_gcs(argc - 2, argv + 2);
  if (strcmp(argv[1], "presign-s3") == 0) return reel_vectors_presign_s3(argc - 2, argv + 2);
  if (strcmp(argv[1], "sign-gcs") == 0) return reel_vectors_sign_gcs(argc - 2, argv + 2);
  fputs(usage, stderr);
  return 2;
}
