#!/usr/bin/env python3
"""Builds a large pcap for the import benchmark by repeating a real capture.

Each repeat gets its own client address (127.a.b.c) and a later time, so every TCP connection stays
distinct and the file reads like one long capture of many users, not the same packets over and over.

usage: make_pcap.py SOURCE.pcap SERVER_PORT OUT.pcap TARGET_MB
"""
import struct
import sys


def main():
    src, server_port, out, target_mb = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    data = open(src, "rb").read()
    header = data[:24]
    magic, _, _, _, _, _, link = struct.unpack("<IHHiIII", header)
    if magic != 0xA1B2C3D4 or link != 1:
        sys.exit(f"{src}: expected a little-endian microsecond pcap with Ethernet link type")
    records = []
    off = 24
    while off + 16 <= len(data):
        sec, usec, caplen, origlen = struct.unpack("<IIII", data[off : off + 16])
        records.append((sec * 1_000_000 + usec, origlen, data[off + 16 : off + 16 + caplen]))
        off += 16 + caplen
    first, last = records[0][0], records[-1][0]
    span = last - first + 1_000_000
    target = target_mb * 1_000_000
    written = 24
    repeat = 0
    with open(out, "wb") as f:
        f.write(header)
        while written < target:
            repeat += 1
            client = bytes([127, 1 + (repeat >> 16) % 254, (repeat >> 8) & 0xFF, repeat & 0xFF])
            shift = repeat * span
            for ts, origlen, pkt in records:
                pkt = bytearray(pkt)
                if len(pkt) >= 14 + 20 and pkt[12:14] == b"\x08\x00":
                    ihl = (pkt[14] & 0x0F) * 4
                    sport, dport = struct.unpack(">HH", pkt[14 + ihl : 14 + ihl + 4])
                    if sport == server_port:
                        pkt[14 + 16 : 14 + 20] = client
                    elif dport == server_port:
                        pkt[14 + 12 : 14 + 16] = client
                t = ts + shift
                f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(pkt), origlen))
                f.write(pkt)
                written += 16 + len(pkt)
    print(f"{out}: {written / 1e6:.0f} MB, {repeat} repeats of {src}")


if __name__ == "__main__":
    main()
