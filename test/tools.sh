#!/usr/bin/env bash
# The Debian tools the test suite runs beside domsec: swaks (with Net::SSLeay for STARTTLS) and
# Postfix as partners, testssl.sh against a receive connector, Chromium for the status page.
# Installs what is missing when it can (root with apt-get); otherwise says in one line what to run.
set -euo pipefail
# Postfix's programs live in /usr/sbin, which a non-login environment may leave off the PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
perl -MNet::SSLeay -MIO::Socket::SSL -e 1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
command -v postfix >/dev/null 2>&1 || need+=(postfix)
command -v testssl >/dev/null 2>&1 || need+=(testssl.sh)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
# ip brings up the loopback of the network namespace the tutorial's test runs in (unshare -n).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# openssl shows a certificate in the tutorial.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# strace shows the order of a durable write's syscalls (file fsync, rename, directory fsync).
command -v strace >/dev/null 2>&1 || need+=(strace)
[ "${#need[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "domsec tests need Debian packages that are missing; run: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "installing the test tools: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is only ever started by the tests, as private instances on loopback ports.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
