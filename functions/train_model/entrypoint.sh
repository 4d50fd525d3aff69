#!/bin/sh
# SageMaker starts training containers with the argument "train"; Lambda passes the handler.
if [ "$1" = "train" ]; then
  exec python -m openlookout.workflows.training_job
fi
exec /lambda-entrypoint.sh "$@"
