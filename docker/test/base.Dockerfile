# The official Airflow image's contract, on Debian's packages only (the tests' BASE_IMAGE):
# Python 3.11 with pip on PATH for user "airflow" (uid 50000, gid 0), AIRFLOW_HOME=/opt/airflow.
# FROM: the debootstrap root file system the test imports (`docker import`).
ARG ROOTFS_IMAGE=lockstep-test/debian-rootfs:bookworm
FROM ${ROOTFS_IMAGE}
RUN useradd --uid 50000 --gid 0 --create-home --shell /bin/bash airflow \
 && mkdir -p /opt/airflow && chown airflow:0 /opt/airflow \
 && python3 -m venv /home/airflow/.venv && chown -R airflow:0 /home/airflow/.venv
ENV PATH=/home/airflow/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    AIRFLOW_HOME=/opt/airflow LANG=C.UTF-8 PYTHONUNBUFFERED=1
USER airflow
WORKDIR /opt/airflow
