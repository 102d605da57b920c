#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/ from the project's fixtures and shipped configs.
Run from the repository root; seeds are named by content hash, so re-running adds nothing new."""
import base64, csv, hashlib, json, os, re

ROOT = 'fuzz/corpus'


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    os.makedirs(f'{ROOT}/{target}', exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(f'{ROOT}/{target}/seed-{name}', 'wb') as f:
        f.write(data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


# path: every Street Manager operation with sample values, plus the tricky escapes.
for row in csv.DictReader(open('tests/fixtures/streetmanager/operations.csv')):
    path = re.sub(r'\{[^}]+\}', 'NW001000001', row['path'])
    put('path', f"/{row['api']}{path}?swaCode=7001")
for t in ['/work/works/AB%20C', '/work/%2e%2e/party', '/work/a%2fb', '/work/a%25%32%66b',
          '/work/a%3Fb', '/work/a%23b', '/work/%C3%A9', '/a/b;c', '/a//b',
          '/work/works/X?swaCode=7001&SwaCode=7002', '/work/works/X?swa%43ode=1&a=%zz',
          '/work/a%252e%252e/x', '/work/a%5Cb', '/work/%7F', '/work/a+b']:
    put('path', t)

# token: header lines, then optionally `---` and a claims document to sign.
header = b64(b'{"alg":"HS256","typ":"JWT"}')
claims = {"sub": "user-1", "org": "7001", "roles": ["Planner"], "iss": "https://issuer.example",
          "aud": "street-manager", "exp": 1900000000, "iat": 1600000000}
body = b64(json.dumps(claims).encode())
put('token', f'token: {header}.{body}.c2ln\n')
put('token', f'authorization: Bearer {header}.{body}.c2ln\n')
put('token', 'token: a.b.c\nauthorization: Bearer a.b.d\n')
put('token', 'x: y\n---\n' + json.dumps(claims))
c2 = dict(claims, aud=['x', 'street-manager'], exp=1900000000.5, nbf=1600000000)
put('token', '---\n' + json.dumps(c2))
c3 = dict(claims, sub='a\u0000b', org='7001\r\n', roles='Contractor')
put('token', '---\n' + json.dumps(c3))
none = b64(b'{"alg":"none"}')
put('token', f'token: {none}.{b64(b"{}")}.\n')

# json_filter: rows under /rows keyed by swa_code + prefix.
rows = [{"work_reference_number": "NW1", "swa_code": "7001", "prefix": "001", "x": [1, {"a": None}]},
        {"work_reference_number": "NW2", "swa_code": "7001", "prefix": "002"},
        {"work_reference_number": "NW3", "swa_code": "7002", "prefix": "001", "nested": {"swa_code": "7001"}},
        {"swa_code": "7001", "prefix": "003", "s": "\u00e9\\\"\n"}]
put('json_filter', json.dumps({"rows": rows, "pagination": {"total_rows": 4, "page": 1}}))
put('json_filter', json.dumps({"rows": []}))
put('json_filter', '{"rows":[{"swa_code":"7001","prefix":"002","prefix":"001"}]}')
put('json_filter', '{"rows":[{"swa_code":"7001","prefix":"001"}],"rows":[{"swa_code":"7002","prefix":"001"}]}')
put('json_filter', '{"rows":[{"swa_code":"\\u0037001","prefix":"001"}]}')
put('json_filter', ' {"pagination":null, "rows" : [ {"prefix":"001" , "swa_code":"7001"} ] } ')

# csv_filter: header row with swa_code and prefix columns.
put('csv_filter', 'work_reference_number,swa_code,prefix,desc\nNW1,7001,001,a\nNW2,7001,002,"b,c"\n'
                  'NW3,7002,003,"multi\nline"\nNW4,7001,003,""""\n')
put('csv_filter', 'swa_code,prefix\r\n7001,001\r\n')
put('csv_filter', '\ufeffswa_code,prefix\n7001,001\n7001,002\n')
put('csv_filter', 'swa_code,prefix,swa_code\n7001,001,7002\n')
put('csv_filter', 'swa_code,prefix\n7001\n7001,001,extra\n')

# snapshot and config: the shipped documents.
for f in ['config/demo-grants.json', 'tests/fixtures/explain/snapshot.json',
          'tests/fixtures/explain/bad_snapshot.json']:
    put('snapshot', open(f, 'rb').read())
for f in ['config/demo.yaml', 'config/streetmanager.yaml', 'benches/load/streetgate.yaml']:
    put('config', open(f, 'rb').read())

# native_head: request heads the native HTTP/1 loop serves, and ones it must hand to hyper.
for h in ['GET /work/works/SW00000000100 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer x\r\n\r\n',
          'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
          'DELETE /work/works/1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n',
          'POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello',
          'POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
          'GET / HTTP/1.1\nHost: gw\nContent-Length: 0\n\n',
          '\r\n\r\nGET / HTTP/1.1\r\nHost: gw\r\n\r\n',
          'GET / HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n',
          'GET / HTTP/1.1\r\nHost: gw\r\nContent-Length: 00\r\n\r\n',
          'GET / HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
          'GET http://gw/work/works/1 HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\n\r\n',
          'OPTIONS * HTTP/1.1\r\nHost: gw\r\nX: a\r\n folded\r\n\r\n']:
    put('native_head', h)

# chunked_body: chunked response bodies, then whatever follows them on the connection.
for b in ['5\r\nhello\r\n0\r\n\r\n', '5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1 200 OK\r\n',
          'A\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n', '5\nhello\n0\n\n',
          '0000000000000000005\r\nhello\r\n0\r\n\r\n', '5 \t;a="b c"\r\nhello\r\n0\r\n\r\n',
          'ffffffffffffffffff\r\n', '5\r\nhello\r\n0\r\nA: b\r\nC: d\r\n\r\n']:
    put('chunked_body', b)
