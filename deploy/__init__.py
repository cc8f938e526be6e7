"""Container image and compose stack: the local base images and `make image-test`."""
