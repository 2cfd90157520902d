#!/bin/sh
# The pipeline command of the submit-to-start benchmark: records the wall clock
# at which the job's process started, in a file named by the job's prompt.
#   stamp.sh DIR NAME   ->   DIR/NAME holds "seconds.nanoseconds"
date +%s.%N > "$1/$2"
