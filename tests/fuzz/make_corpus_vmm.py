#!/usr/bin/env python3
"""Writes the seed corpora of the vmm/ fuzz targets: corpus-qmp/,
corpus-loader/ and corpus-config/ (small, hand-made inputs that reach each
parser's main paths).  Run again after changing an input format:
python3 tests/fuzz/make_corpus_vmm.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(folder, name, data):
    d = os.path.join(HERE, folder)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- QMP: byte 0 = run state (bits 0-1) | negotiate first (bit 2) --------
def req(name, args=None, id=None):
    r = {'execute': name}
    if args is not None:
        r['arguments'] = args
    if id is not None:
        r['id'] = id
    return json.dumps(r) + '\n'


def hmp(line, **kw):
    return req('human-monitor-command', dict({'command-line': line}, **kw))


RUNNING, PAUSED, SHUTDOWN, NEG = 0, 1, 2, 4
qmp = {
    'negotiate': bytes([RUNNING]) + req('qmp_capabilities', id=1).encode(),
    'not-negotiated': bytes([RUNNING]) + req('query-status').encode(),
    'status-stop-cont': bytes([NEG]) + (req('query-status', id='a') + req('stop') +
                                        req('cont') + req('query-status')).encode(),
    'reset-quit': bytes([NEG | PAUSED]) + (req('system_reset') + req('system_reset') +
                                           req('quit')).encode(),
    'shutdown-state': bytes([NEG | SHUTDOWN]) + (req('stop') + req('cont')).encode(),
    'queries': bytes([NEG]) + (req('query-version') + req('query-kvm') +
                               req('query-cpus-fast') + req('query-commands') +
                               req('query-mtree')).encode(),
    'dirty-log': bytes([NEG]) + (req('set-dirty-log', {'enable': True}) +
                                 req('query-dirty-log', {'reset': True}) +
                                 req('set-dirty-log', {'enable': False, 'client': 'vga'}) +
                                 req('set-dirty-log', {'enable': True, 'client': 'x'})).encode(),
    'hmp': bytes([NEG]) + (hmp('info mtree -f -D') + hmp('info status') + hmp('info kvm') +
                           hmp('info cpus', **{'cpu-index': 1}) + hmp('help') +
                           hmp('xp /8xb 0x10') + hmp('xp /2dg 0') + hmp('xp /3uh 0xfffe') +
                           hmp('stop') + hmp('c') + hmp('system_reset') + hmp('q') +
                           hmp('info bogus') + hmp('')).encode(),
    'stats': bytes([NEG]) + (req('query-block') + req('query-blockstats', {'query-nodes': True}) +
                             req('x-query-stats') + hmp('info block') + hmp('info blockstats') +
                             hmp('info migrate') + hmp('info blockstats x')).encode(),
    'bad-requests': bytes([NEG]) + (
        '[1,2]\n{"execute": 5}\n{"arguments": {}}\n{"execute":"stop","x":1}\n'
        '{"execute":"stop","arguments":[]}\n{"execute":"nope"}\n'
        '{"execute":"qmp_capabilities"}\n'
        '{"execute":"human-monitor-command","arguments":{"command-line":"a\\u0000b"}}\n'
        '{"execute":"human-monitor-command","arguments":{}}\n'
        '{"execute":"query-dirty-log","arguments":{"reset":1,"other":2}}\n'
        '{"execute": "query-status"} {"execute": "query-kvm"}\n'
        '{"execute": "query-status" \n{ bad json\n"\\ud800"\n').encode(),
    'caps-enable': bytes([RUNNING]) + (req('qmp_capabilities', {'enable': ['oob']}) +
                                       req('qmp_capabilities', {'enable': [1]}) +
                                       req('qmp_capabilities')).encode(),
    # regression: count * width wrapped past the 4 KiB check (stack over-read)
    'xp-count-wraps': bytes([NEG]) + hmp('xp /4611686018427387905xw 0').encode(),
    'unterminated': bytes([NEG]) + b'{"execute":"query-status","id":[1,{"a":null}]}',
}
for k, v in qmp.items():
    write('corpus-qmp', k, v)

# ---- loaders: [0] ram/cmdline flags [1] cmdline len/16 [2] initrd len/256 --
def elf(segs, note_desc=struct.pack('<I', 0x100000), extra=b''):
    """ELF64 x86-64 with PT_LOAD segments (paddr, filesz, memsz) and a note."""
    phnum = len(segs) + 1
    phoff = 64
    data_off = phoff + 56 * phnum
    note = struct.pack('<III', 4, len(note_desc), 18) + b'Xen\0' + note_desc
    note += b'\0' * (-len(note) % 4)
    ph = b''
    off = data_off + len(note)
    payload = b''
    for paddr, filesz, memsz in segs:
        ph += struct.pack('<IIQQQQQQ', 1, 7, off, paddr, paddr, filesz, memsz, 0x1000)
        payload += bytes((i * 7) & 0xff for i in range(filesz))
        off += filesz
    ph += struct.pack('<IIQQQQQQ', 4, 4, data_off, 0, 0, len(note), len(note), 4)
    eh = b'\x7fELF' + bytes([2, 1, 1]) + b'\0' * 9
    eh += struct.pack('<HHIQQQIHHHHHH', 2, 62, 1, 0x100000, phoff, 0, 0, 64, 56, phnum,
                      0, 0, 0)
    return eh + ph + note + payload + extra


def bzimage(version=0x020f, setup_sects=1, loadflags=1, xlf=1, cmdline_size=255,
            init_size=0x200000, pref=0x1000000, align=0x200000, payload=0x300):
    b = bytearray(512 * (setup_sects + 1) + payload)
    b[0x1f1] = setup_sects
    struct.pack_into('<H', b, 0x1fe, 0xaa55)
    b[0x200] = 0xeb
    b[0x201] = 0x266 - 0x202
    b[0x202:0x206] = b'HdrS'
    struct.pack_into('<H', b, 0x206, version)
    b[0x211] = loadflags
    struct.pack_into('<I', b, 0x22c, 0x37ffffff)
    struct.pack_into('<I', b, 0x230, align)
    struct.pack_into('<H', b, 0x236, xlf)
    struct.pack_into('<I', b, 0x238, cmdline_size)
    struct.pack_into('<Q', b, 0x258, pref)
    struct.pack_into('<I', b, 0x260, init_size)
    return bytes(b)


write('corpus-loader', 'elf-pvh', bytes([2 | 8, 4, 1]) + elf([(0x100000, 64, 0x2000)]))
write('corpus-loader', 'elf-two-segs-above', bytes([2 | 4, 0, 0]) +
      elf([(0x200000, 32, 32), (1 << 32, 16, 0x100)], struct.pack('<Q', 0x200000)))
write('corpus-loader', 'elf-bootinfo-overlap', bytes([0, 0, 0]) +
      elf([(0x6000, 16, 16)]))
write('corpus-loader', 'elf-small-ram', bytes([3 | 8, 255, 2]) + elf([(0x9000, 16, 16)]))
write('corpus-loader', 'bzimage', bytes([2 | 8, 8, 4]) +
      bzimage(pref=0x100000, init_size=0x100000))
write('corpus-loader', 'bzimage-old-protocol', bytes([2, 0, 0]) + bzimage(version=0x0206))
write('corpus-loader', 'bzimage-big-init', bytes([1, 0, 0]) + bzimage(init_size=0x10000000))

# ---- config: JSON text, then NUL-separated arguments ------------------------
def cfg(js, *args):
    return (json.dumps(js) if isinstance(js, dict) else js).encode() + b''.join(
        b'\0' + a.encode() for a in args)


write('corpus-config', 'args', cfg('', '--kernel', 'k', '--memory', '512M', '--cpus=2',
                                   '--cmdline', 'console=ttyS0', '--disk',
                                   'path=/d,readonly=on', '--net', 'tap=t0,mac=52:54:00:aa:bb:cc',
                                   '--rng', '--serial', 'file=/s', '--api-socket', '/a',
                                   '--test-device', '--verbose', '--initrd', 'i'))
write('corpus-config', 'json', cfg({'kernel': 'k', 'memory': 256, 'cpus': '4',
                                    'disk': ['path=a', 'path=b,readonly=off'],
                                    'net': 'tap=x', 'rng': True, 'serial': 'none'}))
write('corpus-config', 'disk-queues', cfg({'disk': ['path=a,num-queues=16']}, '--kernel', 'k',
                                          '--disk', 'path=b,num-queues=4,readonly=on',
                                          '--disk', 'path=c,num-queues=0',
                                          '--disk', 'path=d,num-queues=17'))
write('corpus-config', 'json-and-override', cfg({'kernel': 'k', 'memory': '1G'},
                                                '--memory', '0x100000K', '--serial', 'stdio'))
write('corpus-config', 'errors', cfg('{"kernel": 1, "kernel": 2}', '--bogus', '-h',
                                     '--incoming', '--rng=1', '--memory', '1T', 'x'))
write('corpus-config', 'sizes', cfg('', '--kernel', 'k', '--memory', '2M', '--memory', '3g',
                                    '--memory', '4096KiB', '--memory', '0x10M',
                                    '--memory', '18446744073709551615', '--cpus', '65'))
