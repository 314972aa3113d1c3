"""Drives `autosam web` over HTTP and in headless Chromium (selenium + Debian's chromedriver).

review_browser.py BASE_URL USER PASSWORD DATA_FOLDER ARTIFACTS SESSION_SECONDS

Checks, each printed as "ok <name>" (the first failure raises and exits non-zero):
HTTP: every page asks for a login; security headers on every answer; a wrong password is
refused; files outside a study's fixed names, traversal attempts and a symbolic link planted
in the outbox are refused; a forged or missing CSRF token and a cross-site Origin are refused.
Actions: a promotion and a roll-back with the session's token take effect (a forged one does
not). Annotate next lists the done studies and a study's input downloads as the archived files. Browser: log in through the form; the studies list shows every done study; a study page shows
its QC picture (decoded by the browser) and numbers equal to its stats.json; the slider
changes the slice shown and the contours switch off and on; log out. Screenshots go to ARTIFACTS. Last, an idle session expires.
"""
import http.cookiejar
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

base, user, password, data, artifacts, session_s = sys.argv[1:7]
session_s = float(session_s)
os.makedirs(artifacts, exist_ok=True)
outbox = os.path.join(data, "outbox")


def ok(name):
    print("ok", name, flush=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def opener(jar=None):
    handlers = [NoRedirect()]
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    return urllib.request.build_opener(*handlers)


def fetch(op, path, data=None, headers=None):
    req = urllib.request.Request(base + path, data=data, headers=headers or {})
    try:
        with op.open(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def form(d):
    return urllib.parse.urlencode(d).encode()


anon = opener()
# Every page asks for a login; files and actions are refused outright.
for path in ["/", "/studies", "/studies/1", "/models"]:
    status, headers, _ = fetch(anon, path)
    assert status == 303 and headers.get("location") == "/login", (path, status, headers)
for path in ["/studies/1/files/qc.png", "/studies/1/files/stats.json"]:
    status, _, _ = fetch(anon, path)
    assert status == 401, (path, status)
status, _, _ = fetch(anon, "/models/rollback", data=form({"csrf": "x"}))
assert status == 401, status
ok("login required")

status, headers, body = fetch(anon, "/login")
assert status == 200 and b'name="password"' in body
csp = headers.get("content-security-policy", "")
assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, headers
assert headers.get("x-content-type-options") == "nosniff" and headers.get("x-frame-options") == "DENY", headers
assert headers.get("cache-control") == "no-store", headers
ok("security headers")

status, _, body = fetch(anon, "/login", data=form({"user": user, "password": password + "x"}))
assert status == 401 and b"wrong password" in body, status
status, _, _ = fetch(anon, "/login", data=form({"user": "nobody", "password": password}))
assert status == 401, status
status, _, _ = fetch(anon, "/login", data=form({"user": user, "password": password}), headers={"Origin": "http://evil.example"})
assert status == 403, status
ok("bad logins refused")

jar = http.cookiejar.CookieJar()
me = opener(jar)
status, headers, _ = fetch(me, "/login", data=form({"user": user, "password": password}))
assert status == 303 and headers.get("location") == "/", (status, headers)
cookie = [c for c in jar if c.name == "autosam_session"]
assert cookie, "no session cookie"
raw = headers.get("set-cookie", "")
assert "HttpOnly" in raw and "SameSite=Strict" in raw, raw
status, _, body = fetch(me, "/studies")
assert status == 200, status
ok("login")

# Traversal and names outside the fixed list: refused, whatever the encoding.
done = [d for d in sorted(os.listdir(outbox)) if os.path.isdir(os.path.join(outbox, d)) and not d.startswith(".")]
assert done, "no study in the outbox"
for path in ["/studies/1/files/..%2F..%2Fjournal.sqlite", "/studies/1/files/../../journal.sqlite",
             "/studies/1/files/%2e%2e%2f%2e%2e%2fautosam.toml", "/studies/1/files/cohort.csv",
             "/studies/1/files/reason.txt", "/studies/..%2F1/files/qc.png", "/static/..%2F..%2Fjournal.sqlite",
             "/studies/99999/files/qc.png", "/studies/1%2F..%2F2/files/qc.png"]:
    status, _, body = fetch(me, path)
    assert status in (303, 400, 404), (path, status)
    assert b"SQLite format" not in body and b"[paths]" not in body, path
# A link planted in a study's folder is never followed.
study_dir = os.path.join(outbox, done[0])
prov = os.path.join(study_dir, "provenance.json")
os.rename(prov, prov + ".kept")
os.symlink("/etc/passwd", prov)
try:
    ids = []
    for i in range(1, 50):
        st, _, b = fetch(me, "/studies/%d" % i)
        if st == 200 and ("Study " + done[0]).encode() in b:
            ids.append(i)
    assert ids, "no page for " + done[0]
    status, _, body = fetch(me, "/studies/%d/files/provenance.json" % ids[0])
    assert status == 404 and b"root:" not in body, status
finally:
    os.remove(prov)
    os.rename(prov + ".kept", prov)
ok("traversal refused")

# State changes need the session's CSRF token and a same-site origin.
status, _, _ = fetch(me, "/models/rollback", data=form({"csrf": "0" * 64}))
assert status == 403, status
status, _, _ = fetch(me, "/models/rollback", data=form({}))
assert status in (400, 403), status
status, _, _ = fetch(me, "/logout", data=form({"csrf": "forged"}))
assert status == 403, status
status, _, body = fetch(me, "/studies")
assert status == 200, "a forged logout must not end the session"
ok("forged requests refused")

# Promote and roll back through the page, with the session's token.
import re


def models_page():
    status, _, body = fetch(me, "/models")
    assert status == 200, status
    return body.decode()


page = models_page()
assert "v0001 (current)" in page, page
csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)
status, _, _ = fetch(me, "/models/promote", data=form({"csrf": "f" * 64, "version": "v0002"}))
assert status == 403 and "v0001 (current)" in models_page(), status
status, _, _ = fetch(me, "/models/promote", data=form({"csrf": csrf, "version": "../v0002"}))
assert status == 400, status
status, headers, _ = fetch(me, "/models/promote", data=form({"csrf": csrf, "version": "v0002"}))
assert status == 303 and headers.get("location") == "/models", status
assert "v0002 (current)" in models_page()
status, _, _ = fetch(me, "/models/rollback", data=form({"csrf": csrf}))
assert status == 303, status
assert "v0001 (current)" in models_page()
ok("promote and roll back")

# Annotate next: the done studies, each with its input to download.
status, _, body = fetch(me, "/suggest")
assert status == 200, status
page = body.decode()
suggested = re.findall(r'href="/studies/(\d+)/input"', page)
assert len(suggested) == len(done), (suggested, done)
import io
import zipfile
status, headers, body = fetch(me, "/studies/%s/input" % suggested[0])
assert status == 200 and headers.get("content-type") == "application/zip", status
names = zipfile.ZipFile(io.BytesIO(body)).namelist()
archived = sorted(os.listdir(os.path.join(data, "archive")))
assert any(n.split("/")[0] in archived for n in names) and any(n.endswith(".nii.gz") for n in names), (names, archived)
for n in names:
    member = zipfile.ZipFile(io.BytesIO(body)).read(n)
    top, _, rest = n.partition("/")
    with open(os.path.join(data, "archive", top, rest), "rb") as f:
        assert f.read() == member, n
ok("annotate next lists %d studies, input downloads" % len(suggested))

# The browser.
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

options = Options()
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    options.add_argument(a)
binary = next((p for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] if os.path.exists(p)), None)
if binary:
    options.binary_location = binary
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(base + "/studies")
    assert driver.current_url.endswith("/login"), driver.current_url
    driver.find_element(By.NAME, "user").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    time.sleep(0.5)
    driver.get(base + "/studies")
    rows = driver.find_elements(By.CSS_SELECTOR, "table.studies tbody tr")
    names = [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]
    for d in done:
        assert d in names, (d, names)
    driver.save_screenshot(os.path.join(artifacts, "studies.png"))
    ok("studies list shows %d studies" % len(done))

    checked = 0
    for r in range(len(rows)):
        row = driver.find_elements(By.CSS_SELECTOR, "table.studies tbody tr")[r]
        name = row.find_elements(By.TAG_NAME, "td")[1].text
        stats_path = os.path.join(outbox, name, "stats.json")
        if not os.path.exists(stats_path):
            continue
        with open(stats_path) as f:
            stats = json.load(f)
        row.find_elements(By.TAG_NAME, "a")[0].click()
        time.sleep(0.3)
        qc = driver.find_element(By.CSS_SELECTOR, "img.qc")
        width = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", qc)
        assert width and width > 100, width
        report = stats["report"]
        for key, value in [("lv_edv", report["lv"]["edv"]), ("lv_esv", report["lv"]["esv"]), ("lv_ef", report["lv"]["ef"]),
                           ("rv_edv", report["rv"]["edv"]), ("lv_mass", report["lvMass"])]:
            shown = driver.find_element(By.CSS_SELECTOR, '[data-key="%s"]' % key).text
            assert abs(float(shown) - value) <= 0.051, (key, shown, value)
        viewer = driver.find_elements(By.CSS_SELECTOR, "figure.viewer")[0]
        strip = viewer.find_element(By.CSS_SELECTOR, "div.strip")
        slider = viewer.find_element(By.CSS_SELECTOR, "input.slice")
        before = (strip.get_attribute("data-shown"), strip.value_of_css_property("background-position"))
        driver.save_screenshot(os.path.join(artifacts, "study-%s-before.png" % name))
        slider.send_keys(Keys.ARROW_RIGHT if int(before[0]) < int(slider.get_attribute("max")) else Keys.ARROW_LEFT)
        time.sleep(0.2)
        after = (strip.get_attribute("data-shown"), strip.value_of_css_property("background-position"))
        assert after[0] != before[0] and after[1] != before[1], (before, after)
        assert viewer.find_element(By.TAG_NAME, "output").text == after[0]
        loaded = driver.execute_script(
            "var i = new Image(); i.src = arguments[0]; return new Promise(function (r) { i.onload = function () { r(i.naturalWidth); }; i.onerror = function () { r(0); }; });",
            strip.get_attribute("data-image"))
        width = int(strip.get_attribute("data-width")) * int(strip.get_attribute("data-slices"))
        assert loaded == width, (loaded, width)
        layers = strip.value_of_css_property("background-image")
        assert "contours_" in layers and "slices_" in layers, layers
        driver.find_element(By.ID, "contours").click()
        time.sleep(0.1)
        layers = strip.value_of_css_property("background-image")
        assert "contours_" not in layers and "slices_" in layers, layers
        driver.find_element(By.ID, "contours").click()
        driver.save_screenshot(os.path.join(artifacts, "study-%s-after.png" % name))
        checked += 1
        driver.get(base + "/studies")
    assert checked == len(done), (checked, done)
    ok("study pages: QC picture, numbers match stats.json, slider moves, contours switch (%d studies)" % checked)

    driver.get(base + "/models")
    driver.save_screenshot(os.path.join(artifacts, "models.png"))
    driver.find_element(By.CSS_SELECTOR, "nav form.logout button").click()
    time.sleep(0.3)
    driver.get(base + "/studies")
    assert driver.current_url.endswith("/login"), driver.current_url
    ok("logout")
finally:
    driver.quit()

# An idle session expires.
status, _, _ = fetch(me, "/studies")
assert status == 200, status
time.sleep(session_s + 2)
status, headers, _ = fetch(me, "/studies")
assert status == 303 and headers.get("location") == "/login", status
ok("idle session expired")
