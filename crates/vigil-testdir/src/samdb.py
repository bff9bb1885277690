"""Direct sam.ldb access for vigil-testdir (run with Debian's /usr/bin/python3).

Usage: python3 -I samdb.py SMB_CONF COMMAND [ARGS]
  add              LDIF on stdin; prints the number of entries added.
                   organizationalUnit entries that already exist are skipped.
  guid NAME        prints the objectGUID of computer NAME (canonical form).
  disable NAME 0|1 clears or sets ACCOUNTDISABLE (0x2) in userAccountControl.
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


def main():
    conf, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    db = open_db(conf)
    if command == "add":
        add(db)
    elif command == "guid":
        guid(db, args[0])
    elif command == "disable":
        disable(db, args[0], args[1] == "1")
    else:
        sys.exit("unknown command %r" % command)


main()
