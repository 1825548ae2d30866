#!/usr/bin/env python3
"""Writes N synthetic SES sender domains as zone files (one per domain, DIR/NAME.zone), a
stand-in amazonses.com zone, and the domain list (DIR/domains.txt).

About 70% of the domains are correct; the rest carry one pitfall each (missing or wrong
MAIL FROM MX, second SPF record, missing or wrong DKIM CNAME, no DMARC, p=none without
rua, an apex SPF over ten lookups).
"""
import os
import sys

SOA = "@ 3600 IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60\n@ 3600 IN NS ns.bench.\n"
KEY = ("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnpx+6eZeyXx/sUIA9cq9LI9kiV9a8b11iQaCfmyayT5D"
       "N0/+FuQPivxsk1dGWIXLHyy8YggNbzghhmU/05lA1LtSR7BVn6v1P2uDs9a6TPoerMaKfySdjtO+RR1TQdxgHI15"
       "LhQbsttmTNCjpdnZ3MCtPJ9EKnNfOyqr94kjhGvr8f+SevbeZZC8RIWuwI0KnFaKsZpMba40sgODuK2hfc0YHV+r"
       "ktLiIRhFfCpKTV3Q9S6BMXSPUhLQzgjldn/lekbuVPvxstcPlBhybHAgHbS+IxNVIBNdqSWPoPG/AoVkGskGOegh"
       "w34OsYjS/FJdJaSZ+ky/nfotFKKuzlB4zwIDAQAB")

def txt(v):
    return " ".join('"%s"' % v[i:i + 255] for i in range(0, len(v), 255))

def domain_zone(name, i):
    kind = i % 10
    t = [f"t{i}a", f"t{i}b", f"t{i}c"]
    lines = ["@ MX 10 inbound", "inbound A 192.0.2.25", "@ TXT " + txt("v=spf1 mx include:_spf.bench-mail.net ~all")]
    mx = "10 feedback-smtp.us-east-1.amazonses.com."
    if kind == 3:
        mx = None
    elif kind == 4:
        mx = "10 feedback-smtp.us-east-7.amazonses.com."
    if mx:
        lines.append(f"mail MX {mx}")
    lines.append("mail TXT " + txt("v=spf1 include:amazonses.com ~all"))
    if kind == 5:
        lines.append("mail TXT " + txt("v=spf1 include:amazonses.com -all"))
    for n, tok in enumerate(t):
        if kind == 6 and n == 2:
            continue
        target = f"{tok}.dkim.amazonses.com.{name}." if (kind == 7 and n == 0) else f"{tok}.dkim.amazonses.com."
        lines.append(f"{tok}._domainkey CNAME {target}")
    if kind == 8:
        pass
    elif kind == 9:
        lines.append("_dmarc TXT " + txt("v=DMARC1; p=none"))
    else:
        lines.append("_dmarc TXT " + txt(f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{name}"))
    if i % 50 == 0:
        lines[2] = "@ TXT " + txt("v=spf1 " + " ".join(f"include:s{k}._spf.{name}" for k in range(11)) + " -all")
        lines += [f"s{k}._spf TXT \"v=spf1 ip4:192.0.2.{k} -all\"" for k in range(11)]
    return f"$ORIGIN {name}.\n$TTL 300\n{SOA}" + "".join(l + "\n" for l in lines)

def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_domains.py N DIR")
    n, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "amazonses.com.zone"), "w") as f:
        f.write("$ORIGIN amazonses.com.\n$TTL 300\n" + SOA + "@ TXT " + txt("v=spf1 ip4:199.255.192.0/22 ip4:54.240.0.0/18 -all") + "\n*.dkim TXT " + txt("p=" + KEY) + "\n")
    with open(os.path.join(out, "bench-mail.net.zone"), "w") as f:
        f.write("$ORIGIN bench-mail.net.\n$TTL 300\n" + SOA + "_spf TXT \"v=spf1 ip4:198.51.100.0/24 include:_spf2.bench-mail.net ~all\"\n_spf2 TXT \"v=spf1 ip4:203.0.113.0/24 ~all\"\n")
    with open(os.path.join(out, "domains.txt"), "w") as listing:
        listing.write("# synthetic SES sender domains\n")
        for i in range(n):
            name = f"sender{i:06d}.com"
            with open(os.path.join(out, name + ".zone"), "w") as f:
                f.write(domain_zone(name, i))
            listing.write(f"{name} dkim-token=t{i}a dkim-token=t{i}b dkim-token=t{i}c\n")

main()
