"""Direct sam.ldb access for vigil-testdir (run with Debian's /usr/bin/python3).

Usage: python3 -I samdb.py SMB_CONF COMMAND [ARGS]
  add              LDIF on stdin; prints the number of entries added.
                   organizationalUnit entries that already exist are skipped.
  guid NAME        prints the objectGUID of computer NAME (canonical form).
  disable NAME 0|1 clears or sets ACCOUNTDISABLE (0x2) in userAccountControl.
  dc-spns          adds the DC's ldap/ service principal names, as
                   samba_spnupdate does (it runs from the dnsupdate service,
                   which the test DC turns off); Kerberos binds need them.
  dns              lines "FQDN ADDRESS..." on stdin: sets the A/AAAA records
                   of each name in the domain's DNS zone (served by samba's
                   internal DNS server); prints the number of names set.
Exit status 3: no computer NAME.

The database is opened through Samba's full DSDB module stack (so objectGUID,
objectSid, RIDs, security descriptors and metadata are made exactly as for an
LDAP add), directly on disk while samba runs, as samba-tool does. Each entry
is its own transaction: inside one large transaction ldb deep-copies every
cached index list per add, which makes bulk loads quadratic.
"""
import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import misc
from samba.ndr import ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

NOT_FOUND = 3
ACCOUNTDISABLE = 0x2


def open_db(conf):
    lp = LoadParm()
    lp.load(conf)
    return SamDB(
        url=lp.private_path("sam.ldb"),
        lp=lp,
        session_info=system_session(),
        flags=ldb.FLG_NOSYNC,
    )


def add(db):
    added = 0
    for _, msg in db.parse_ldif(sys.stdin.read()):
        try:
            db.add(msg)
        except ldb.LdbError as e:
            code, text = e.args
            classes = [str(v).lower() for v in msg["objectClass"]]
            if code == ldb.ERR_ENTRY_ALREADY_EXISTS and "organizationalunit" in classes:
                continue
            sys.exit("adding %s: %s (LDAP result %d)" % (msg.dn, text, code))
        added += 1
    print(added)


def find_computer(db, name, attrs):
    res = db.search(
        base=db.domain_dn(),
        scope=ldb.SCOPE_SUBTREE,
        expression="(&(objectClass=computer)(sAMAccountName=%s))"
        % ldb.binary_encode(name + "$"),
        attrs=attrs,
    )
    if len(res) != 1:
        print("no computer named %r (%d matches)" % (name, len(res)), file=sys.stderr)
        sys.exit(NOT_FOUND)
    return res[0]


def guid(db, name):
    raw = find_computer(db, name, ["objectGUID"])["objectGUID"][0]
    print(str(ndr_unpack(misc.GUID, raw)))


def disable(db, name, disabled):
    msg = find_computer(db, name, ["userAccountControl"])
    uac = int(str(msg["userAccountControl"][0]))
    uac = uac | ACCOUNTDISABLE if disabled else uac & ~ACCOUNTDISABLE
    change = ldb.Message(msg.dn)
    change["userAccountControl"] = ldb.MessageElement(
        str(uac), ldb.FLAG_MOD_REPLACE, "userAccountControl"
    )
    db.modify(change)


def dns(db):
    import ipaddress

    from samba import WERRORError
    from samba.ndr import ndr_pack
    from samba.provision.sambadns import AAAARecord, ARecord

    zone = db.domain_dns_name()
    container = "DC=%s,CN=MicrosoftDNS,DC=DomainDnsZones,%s" % (zone, db.domain_dn())
    done = 0
    for line in sys.stdin.read().splitlines():
        fields = line.split()
        if not fields:
            continue
        name, addrs = fields[0], fields[1:]
        if not name.lower().endswith("." + zone.lower()):
            sys.exit("%s is not in the zone %s" % (name, zone))
        label = name[: -len(zone) - 1]
        records = []
        for a in addrs:
            if ipaddress.ip_address(a).version == 4:
                records.append(ARecord(a))
            else:
                records.append(AAAARecord(a))
        try:
            db.dns_replace(name, records)
        except WERRORError:
            # No such name yet: dns_replace only changes existing nodes.
            msg = ldb.Message(ldb.Dn(db, "DC=%s,%s" % (label, container)))
            msg["objectClass"] = ["top", "dnsNode"]
            msg["dnsRecord"] = ldb.MessageElement(
                [ndr_pack(r) for r in records], ldb.FLAG_MOD_ADD, "dnsRecord"
            )
            db.add(msg)
        done += 1
    print(done)


def dc_spns(db):
    res = db.search(
        base=db.domain_dn(),
        scope=ldb.SCOPE_SUBTREE,
        expression="(&(objectClass=computer)(primaryGroupID=516))",
        attrs=["servicePrincipalName", "dNSHostName", "sAMAccountName"],
    )
    zone = db.domain_dns_name()
    netbios_domain = zone.split(".")[0].upper()
    for msg in res:
        fqdn = str(msg["dNSHostName"][0])
        short = str(msg["sAMAccountName"][0]).rstrip("$")
        have = {str(v).lower() for v in msg.get("servicePrincipalName", [])}
        want = [
            "ldap/%s" % fqdn,
            "ldap/%s" % short,
            "ldap/%s/%s" % (fqdn, zone),
            "ldap/%s/%s" % (fqdn, netbios_domain),
        ]
        missing = [w for w in want if w.lower() not in have]
        if missing:
            change = ldb.Message(msg.dn)
            change["servicePrincipalName"] = ldb.MessageElement(
                missing, ldb.FLAG_MOD_ADD, "servicePrincipalName"
            )
            db.modify(change)


def main():
    conf, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    db = open_db(conf)
    if command == "add":
        add(db)
    elif command == "guid":
        guid(db, args[0])
    elif command == "dc-spns":
        dc_spns(db)
    elif command == "dns":
        dns(db)
    elif command == "disable":
        disable(db, args[0], args[1] == "1")
    else:
        sys.exit("unknown command %r" % command)


main()
