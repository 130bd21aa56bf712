#!/bin/bash
# ldap-test.sh — a private OpenLDAP slapd on 127.0.0.1 for edgerelay's LDAP
# integration test (auth/ldap_slapd_test.go).
#
#   scripts/ldap-test.sh start   # (default) build a directory in a temp dir and start slapd
#   scripts/ldap-test.sh stop    # stop it and remove the temp dir
#   scripts/ldap-test.sh env     # print the variables for the Go test again
#
# Then:  eval "$(scripts/ldap-test.sh env)" && go test ./auth -run Slapd -v
#
# Needs slapd, ldap-utils and openssl (Debian: apt-get install slapd ldap-utils;
# the package's own slapd need not run). Environment:
#   LDAP_TEST_PORT      ldap:// and StartTLS port   (default 13389)
#   LDAP_TEST_TLS_PORT  ldaps:// port               (default 13636)
#   LDAP_TEST_DIR       where everything is kept    (default ${TMPDIR:-/tmp}/edgerelay-slapd-$UID)
#
# Directory: dc=example,dc=org; service account cn=relay,dc=example,dc=org
# (password relaypw) that may search; users alice/alicepw and bob/bobpw with
# two mail values each.
set -euo pipefail

PORT=${LDAP_TEST_PORT:-13389}
TLS_PORT=${LDAP_TEST_TLS_PORT:-13636}
D=${LDAP_TEST_DIR:-${TMPDIR:-/tmp}/edgerelay-slapd-$(id -u)}
SCHEMA=${LDAP_TEST_SCHEMA_DIR:-/etc/ldap/schema}
MODULES=${LDAP_TEST_MODULE_DIR:-/usr/lib/ldap}

print_env() {
	echo "export EDGERELAY_SLAPD_URL=ldap://127.0.0.1:$PORT"
	echo "export EDGERELAY_SLAPD_LDAPS_URL=ldaps://127.0.0.1:$TLS_PORT"
	echo "export EDGERELAY_SLAPD_CA=$D/ca.pem"
}

stop() {
	if [[ -f $D/slapd.pid ]]; then
		local pid
		pid=$(cat "$D/slapd.pid")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
	fi
	rm -rf "$D"
}

start() {
	for cmd in slapd slapadd slappasswd ldapsearch openssl; do
		command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] ||
			{ echo "ldap-test.sh: $cmd not found (apt-get install slapd ldap-utils openssl)" >&2; exit 1; }
	done
	export PATH=$PATH:/usr/sbin
	if [[ -f $D/slapd.pid ]] && kill -0 "$(cat "$D/slapd.pid")" 2>/dev/null; then
		echo "ldap-test.sh: already running (pid $(cat "$D/slapd.pid")); '$0 stop' first" >&2
		exit 1
	fi
	rm -rf "$D"
	mkdir -p "$D/slapd.d" "$D/db"
	chmod 700 "$D"

	# A CA and a server certificate for 127.0.0.1, so that clients verify
	# the server instead of skipping verification.
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=edgerelay test CA" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		-keyout "$D/ca.key" -out "$D/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
		-keyout "$D/key.pem" -out "$D/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$D/ext.cnf"
	openssl x509 -req -in "$D/server.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial \
		-days 30 -extfile "$D/ext.cnf" -out "$D/cert.pem" 2>/dev/null

	cat >"$D/config.ldif" <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $D/slapd-own.pid
olcTLSCACertificateFile: $D/ca.pem
olcTLSCertificateFile: $D/cert.pem
olcTLSCertificateKeyFile: $D/key.pem

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $MODULES
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$SCHEMA/core.ldif
include: file://$SCHEMA/cosine.ldif
include: file://$SCHEMA/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: dc=example,dc=org
olcRootDN: cn=admin,dc=example,dc=org
olcRootPW: $(slappasswd -h '{SSHA}' -s adminpw)
olcDbDirectory: $D/db
olcDbMaxSize: 104857600
olcDbIndex: objectClass,uid,mail eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by dn.exact="cn=relay,dc=example,dc=org" read by self read by * none
EOF
	slapadd -q -n 0 -F "$D/slapd.d" -l "$D/config.ldif"

	cat >"$D/data.ldif" <<EOF
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: cn=relay,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: relay
userPassword: $(slappasswd -h '{SSHA}' -s relaypw)

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
mail: alice@example.org
mail: a.example@example.org
userPassword: $(slappasswd -h '{SSHA}' -s alicepw)

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Example
mail: bob@example.org
mail: postmaster@example.org
userPassword: $(slappasswd -h '{SSHA}' -s bobpw)
EOF
	slapadd -q -n 1 -F "$D/slapd.d" -l "$D/data.ldif"

	# -d 0: stay in the foreground (setsid detaches it from this shell).
	setsid slapd -d 0 -F "$D/slapd.d" -h "ldap://127.0.0.1:$PORT/ ldaps://127.0.0.1:$TLS_PORT/" \
		>"$D/slapd.log" 2>&1 </dev/null &
	echo $! >"$D/slapd.pid"
	local pid=$! t0
	t0=$(date +%s%N)
	until ldapsearch -x -H "ldap://127.0.0.1:$PORT" -s base -b "" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$D/slapd.log" >&2
			rm -f "$D/slapd.pid"
			echo "ldap-test.sh: slapd did not start" >&2
			exit 1
		fi
		if (($(date +%s%N) - t0 > 10000000000)); then
			echo "ldap-test.sh: slapd not answering after 10 s" >&2
			stop
			exit 1
		fi
		sleep 0.1
	done
	# Smoke test: the service account finds alice; LDAPS verifies with our CA.
	LDAPTLS_CACERT="$D/ca.pem" ldapsearch -LLL -x -H "ldaps://127.0.0.1:$TLS_PORT" \
		-D cn=relay,dc=example,dc=org -w relaypw -b dc=example,dc=org '(uid=alice)' dn >/dev/null
	echo "slapd ready in $((($(date +%s%N) - t0) / 1000000)) ms, pid $pid" >&2
	echo "CA: $D/ca.pem" >&2
	print_env
}

case ${1:-start} in
start) start ;;
stop) stop ;;
env) print_env ;;
*)
	echo "usage: $0 [start|stop|env]" >&2
	exit 2
	;;
esac
