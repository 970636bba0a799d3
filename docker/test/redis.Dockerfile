# A stand-in for the official redis image, from Debian's redis-server package: for the docker test.
ARG ROOTFS_IMAGE=lockstep-test/debian-rootfs:bookworm
FROM ${ROOTFS_IMAGE}
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
