# A stand-in for the official postgres image (POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB,
# data in /var/lib/postgresql/data), from Debian's postgresql package: for the docker test.
ARG ROOTFS_IMAGE=lockstep-test/debian-rootfs:bookworm
FROM ${ROOTFS_IMAGE}
COPY docker/test/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data && chmod +x /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
