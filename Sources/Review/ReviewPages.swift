import AutoSAM
import CardiacImaging
import Foundation
import QC
import Service

/// The pages, as plain server-rendered HTML. Every value that comes from a file or the journal
/// goes through `esc`; no inline script or style (the Content-Security-Policy forbids them).
enum ReviewPages {
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// `v` with `decimals` decimals (0...4), as "%.Nf" writes it, without Foundation's
    /// formatter (a list of 1,000 studies formats some 8,000 numbers).
    static func num(_ v: Double?, _ decimals: Int = 1) -> String {
        guard let v, v.isFinite, abs(v) < 1e12 else { return "" }
        let d = max(0, min(4, decimals)), scale = [1, 10, 100, 1000, 10000][d]
        let n = Int64((abs(v) * Double(scale)).rounded())
        let whole = String(n / Int64(scale)), sign = v < 0 && n != 0 ? "-" : ""
        guard d > 0 else { return sign + whole }
        let frac = String(n % Int64(scale))
        return sign + whole + "." + String(repeating: "0", count: d - frac.count) + frac
    }

    /// Local time as "yyyy-MM-dd HH:mm" (localtime_r: no formatter object per row).
    static func time(_ t: Double?) -> String {
        guard let t, t.isFinite else { return "" }
        var secs = time_t(t.rounded(.down)), tm = tm()
        guard localtime_r(&secs, &tm) != nil else { return "" }
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min))"
    }

    /// The frame around every page: navigation, who is logged in, the log-out button.
    static func page(_ title: String, user: String?, csrf: String?, body: String) -> String {
        var nav = ""
        if let user, let csrf {
            nav = """
                <nav><a href="/">Overview</a> <a href="/studies">Studies</a> <a href="/studies?review=yes">To review</a> \
                <a href="/suggest">Annotate next</a> <a href="/models">Models</a>
                <form class="logout" method="post" action="/logout"><input type="hidden" name="csrf" value="\(esc(csrf))">\
                <span>\(esc(user))</span> <button type="submit">Log out</button></form></nav>
                """
        }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(esc(title)) - autosam</title><link rel="stylesheet" href="/static/review.css"></head>
            <body>\(nav)<main><h1>\(esc(title))</h1>
            \(body)
            </main><script src="/static/review.js"></script></body></html>
            """
    }

    static func login(error: String?) -> String {
        page("Log in", user: nil, csrf: nil, body: """
            \(error.map { "<p class=\"error\">\(esc($0))</p>" } ?? "")
            <form method="post" action="/login" class="login">
            <label>User <input name="user" autocomplete="username" required autofocus></label>
            <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
            <button type="submit">Log in</button></form>
            """)
    }

    static func overview(_ s: ServiceStatus) -> String {
        var b = """
            <table class="counts"><tr><th>Arriving in the inbox</th><td>\(s.inboxWaiting)</td></tr>
            <tr><th>Queued</th><td>\(s.queued) (\(s.retrying) retrying)</td></tr>
            <tr><th>Processing</th><td>\(s.processing)</td></tr>
            <tr><th>Done</th><td><a href="/studies?state=done">\(s.done)</a></td></tr>
            <tr><th>Failed</th><td><a href="/studies?state=failed">\(s.failed)</a></td></tr>
            <tr><th>Serving head</th><td>\(esc(s.currentModel))</td></tr>
            <tr><th>Labelled volumes</th><td>\(s.labelledTotal) accepted, \(s.labelledPending) not yet used by a refit</td></tr>
            </table>
            """
        if let m = s.meanSeconds { b += "<p>Mean over the last \(s.recent.count) studies: \(num(m)) s a study.</p>" }
        if !s.recent.isEmpty {
            b += "<h2>Recent</h2><table><tr><th>#</th><th>Kind</th><th>Seconds</th><th>Head</th><th>Finished</th></tr>"
            for t in s.recent {
                b += "<tr><td><a href=\"/studies/\(t.id)\">\(t.id)</a></td><td>\(esc(t.kind))</td><td>\(num(t.seconds))</td><td>\(esc(t.modelVersion))</td><td>\(esc(t.finishedAt))</td></tr>"
            }
            b += "</table>"
        }
        if !s.recentFailures.isEmpty {
            b += "<h2>Recent failures</h2><table><tr><th>#</th><th>Reason</th><th>When</th></tr>"
            for f in s.recentFailures {
                b += "<tr><td><a href=\"/studies/\(f.id)\">\(f.id)</a></td><td>\(esc(String(f.reason.split(separator: "\n").first ?? "")))</td><td>\(esc(f.finishedAt))</td></tr>"
            }
            b += "</table>"
        }
        if !s.workers.isEmpty {
            // Workers sharing the queue in PostgreSQL (docs/DEPLOYMENT.md).
            b += "<h2>Workers</h2>"
            if let rate = s.studiesPerHour { b += "<p>The cluster finished \(num(rate)) studies in the last hour.</p>" }
            b += "<table><tr><th>Worker</th><th>Host</th><th>Process</th><th>State</th><th>Heartbeat</th><th>Head</th><th>Study</th><th>Done</th></tr>"
            for w in s.workers {
                let study = w.study.map { "<a href=\"/studies/\($0)\">\($0)</a>" } ?? ""
                b += "<tr><td>\(esc(w.name))</td><td>\(esc(w.host))</td><td>\(w.pid)</td><td>\(esc(w.condition(lease: s.leaseSeconds ?? 30)))</td>"
                    + "<td>\(time(w.heartbeatAt))</td><td>\(esc(w.head ?? ""))</td><td>\(study)</td><td>\(w.done)</td></tr>"
            }
            b += "</table>"
        }
        if !s.pacs.isEmpty {
            b += "<h2>PACS</h2><table><tr><th>Destination</th><th>Sent</th><th>Waiting</th><th>Last error</th></tr>"
            for d in s.pacs {
                b += "<tr><td>\(esc(d.destination))</td><td>\(d.sent)</td><td>\(d.pending)</td><td>\(esc(d.pending > 0 ? d.lastError ?? "" : ""))</td></tr>"
            }
            b += "</table>"
        }
        return b
    }

    /// The sortable columns of the studies list: key, heading, value to sort by.
    static let columns: [(key: String, title: String, value: @Sendable (StudyRow) -> Double?)] = [
        ("id", "#", { Double($0.record.id) }),
        ("finished", "Finished", { $0.record.finishedAt }),
        ("lv_ef", "LV EF %", { $0.summary?.report?.lv.ef }),
        ("lv_edv", "LV EDV mL", { $0.summary?.report?.lv.edv }),
        ("lv_esv", "LV ESV mL", { $0.summary?.report?.lv.esv }),
        ("lv_mass", "LV mass g", { $0.summary?.report?.lvMass }),
        ("rv_ef", "RV EF %", { $0.summary?.report?.rv.ef }),
        ("uncertainty", "Uncertainty", { $0.summary?.review?.uncertainty }),
    ]

    struct ListQuery {
        var sort = "id"
        var descending = true
        var text = ""
        var state: StudyState?
        var reviewOnly = false
    }

    /// Filters and sorts the rows (missing values last whichever way).
    static func select(_ rows: [StudyRow], _ q: ListQuery) -> [StudyRow] {
        let needle = q.text.lowercased()
        let kept = rows.filter { r in
            (q.state == nil || r.record.state == q.state) && (!q.reviewOnly || r.summary?.review?.review == true)
                && (needle.isEmpty || r.record.outputName.lowercased().contains(needle) || r.record.kind.lowercased().contains(needle)
                    || "\(r.record.id)" == needle)
        }
        let value = columns.first { $0.key == q.sort }?.value ?? columns[0].value
        let keyed = kept.map { (value($0), $0) }
        return keyed.sorted { a, b in
            switch (a.0, b.0) {
            case let (x?, y?): return x == y ? a.1.record.id < b.1.record.id : (q.descending ? x > y : x < y)
            case (.some, nil): return true
            case (nil, .some): return false
            default: return a.1.record.id < b.1.record.id
            }
        }.map(\.1)
    }

    static func studies(_ rows: [StudyRow], total: Int, query q: ListQuery) -> String {
        func link(_ key: String) -> String {
            var items = ["sort=\(key)", "dir=\(key == q.sort && q.descending ? "asc" : "desc")"]
            if !q.text.isEmpty { items.append("q=" + (q.text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")) }
            if let s = q.state { items.append("state=\(s.rawValue)") }
            if q.reviewOnly { items.append("review=yes") }
            return "/studies?" + items.joined(separator: "&amp;")
        }
        var b = """
            <form method="get" action="/studies" class="filter">
            <input name="q" value="\(esc(q.text))" placeholder="study name or #">
            <select name="state"><option value="">any state</option>
            """
        for s in StudyState.allCases {
            b += "<option value=\"\(s.rawValue)\"\(q.state == s ? " selected" : "")>\(s.rawValue)</option>"
        }
        b += """
            </select><label><input type="checkbox" name="review" value="yes"\(q.reviewOnly ? " checked" : "")> flagged for review</label>
            <input type="hidden" name="sort" value="\(esc(q.sort))"><input type="hidden" name="dir" value="\(q.descending ? "desc" : "asc")">
            <button type="submit">Filter</button></form>
            <p class="count">\(rows.count) of \(total) studies</p>
            <table class="studies"><thead><tr>
            """
        let headings: [(String?, String)] = [("id", "#"), (nil, "Study"), (nil, "Kind"), (nil, "State"), ("finished", "Finished"), (nil, "Head")]
            + columns.dropFirst(2).map { (Optional($0.key), $0.title) } + [(nil, "Review")]
        for (key, title) in headings {
            if let key {
                let mark = key == q.sort ? (q.descending ? " &#9660;" : " &#9650;") : ""
                b += "<th><a href=\"\(link(key))\">\(esc(title))\(mark)</a></th>"
            } else {
                b += "<th>\(esc(title))</th>"
            }
        }
        b += "</tr></thead><tbody>\n"
        for r in rows {
            let rec = r.record, rep = r.summary?.report, rev = r.summary?.review
            let flag = rev.map { $0.review ? "<span class=\"flag\">review</span>" : "ok" } ?? ""
            b += "<tr class=\"\(rec.state.rawValue)\"><td><a href=\"/studies/\(rec.id)\">\(rec.id)</a></td><td><a href=\"/studies/\(rec.id)\">\(esc(rec.outputName))</a></td>"
            b += "<td>\(esc(rec.kind))</td><td>\(rec.state.rawValue)</td><td>\(time(rec.finishedAt))</td><td>\(esc(rec.modelVersion ?? ""))</td>"
            b += "<td>\(num(rep?.lv.ef))</td><td>\(num(rep?.lv.edv))</td><td>\(num(rep?.lv.esv))</td><td>\(num(rep?.lvMass))</td><td>\(num(rep?.rv.ef))</td>"
            b += "<td>\(num(rev?.uncertainty, 3))</td><td>\(flag)</td></tr>\n"
        }
        b += "</tbody></table>"
        return b
    }

    static func study(_ row: StudyRow, slices: SliceStrips.Index?, hasQC: Bool, files: [String]) -> String {
        let rec = row.record
        var b = """
            <table class="facts"><tr><th>Journal #</th><td>\(rec.id)</td></tr>
            <tr><th>Kind</th><td>\(esc(rec.kind))</td></tr><tr><th>State</th><td>\(rec.state.rawValue)</td></tr>
            <tr><th>Claimed</th><td>\(time(rec.claimedAt))</td></tr><tr><th>Finished</th><td>\(time(rec.finishedAt))</td></tr>
            <tr><th>Head</th><td>\(esc(rec.modelVersion ?? ""))</td></tr><tr><th>Seconds</th><td>\(num(rec.seconds))</td></tr>
            """
        if let rev = row.summary?.review {
            b += "<tr><th>Uncertainty</th><td>\(num(rev.uncertainty, 3)) (threshold \(num(rev.threshold, 3)))\(rev.review ? " <span class=\"flag\">flagged for review</span>" : "")</td></tr>"
        }
        if rec.state == .failed || rec.state == .retry, let reason = rec.reason {
            b += "<tr><th>Reason</th><td><pre>\(esc(reason))</pre></td></tr>"
        }
        b += "</table>"
        if let rep = row.summary?.report {
            b += "<h2>Measurements</h2><table class=\"numbers\"><tr><th></th><th>EDV mL</th><th>ESV mL</th><th>SV mL</th><th>EF %</th><th>EDVi mL/m&#178;</th></tr>"
            for (name, v) in [("LV", rep.lv), ("RV", rep.rv)] {
                b += "<tr><th>\(name)</th><td data-key=\"\(name.lowercased())_edv\">\(num(v.edv))</td><td data-key=\"\(name.lowercased())_esv\">\(num(v.esv))</td><td>\(num(v.sv))</td><td data-key=\"\(name.lowercased())_ef\">\(num(v.ef))</td><td>\(num(v.edvIndex))</td></tr>"
            }
            b += "</table><p>LV mass <span data-key=\"lv_mass\">\(num(rep.lvMass))</span> g\(rep.lvMassIndex.map { " (\(num($0)) g/m&#178;)" } ?? ""); ED frame \(rep.edFrame.map(String.init) ?? "?"), ES frame \(rep.esFrame.map(String.init) ?? "?")."
            if !rep.flags.isEmpty { b += " QC flags: <span class=\"flag\">\(esc(rep.flags.map(\.rawValue).joined(separator: ", ")))</span>" }
            b += "</p>"
        }
        if let curve = row.summary?.phaseSelection { b += "<h2>LV volume over the cycle</h2>" + efCurve(curve) }
        if let s = slices {
            b += "<h2>Slices</h2><p><label><input type=\"checkbox\" id=\"contours\" checked> contours</label></p>"
            for (phase, frame, image, contours) in [("ED", s.ed.frame, s.ed.image, s.ed.contours), ("ES", s.es.frame, s.es.image, s.es.contours)] {
                b += """
                    <figure class="viewer"><figcaption>\(phase) (frame \(frame)), slice <output>1</output> of \(s.slices)</figcaption>
                    <div class="strip" data-image="/studies/\(rec.id)/files/\(esc(image))" data-contours="/studies/\(rec.id)/files/\(esc(contours))" \
                    data-width="\(s.panelWidth)" data-height="\(s.panelHeight)" data-slices="\(s.slices)"></div>
                    <input type="range" class="slice" min="1" max="\(s.slices)" value="\((s.slices + 1) / 2)" aria-label="\(phase) slice"></figure>
                    """
            }
        }
        if hasQC { b += "<h2>QC picture</h2><img class=\"qc\" src=\"/studies/\(rec.id)/files/qc.png\" alt=\"QC picture\">" }
        if !files.isEmpty {
            b += "<h2>Files</h2><ul>" + files.map { "<li><a href=\"/studies/\(rec.id)/files/\(esc($0))\" download>\(esc($0))</a></li>" }.joined() + "</ul>"
        }
        return b
    }

    /// The LV cavity volume of every frame as an SVG line, ED and ES marked.
    static func efCurve(_ p: PhaseSelection) -> String {
        let v = p.lvVolumes
        guard v.count > 1, let hi = v.max(), let lo = v.min(), hi > 0 else { return "" }
        let w = 480.0, h = 160.0, pad = 30.0
        func x(_ i: Int) -> Double { pad + Double(i) / Double(v.count - 1) * (w - 2 * pad) }
        func y(_ val: Double) -> Double { h - pad - (val - lo) / max(hi - lo, 1e-9) * (h - 2 * pad) }
        let points = v.enumerated().map { String(format: "%.1f,%.1f", x($0.offset), y($0.element)) }.joined(separator: " ")
        var s = "<svg class=\"curve\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"LV volume by frame\">"
        s += "<polyline fill=\"none\" stroke=\"#2a6\" stroke-width=\"2\" points=\"\(points)\"/>"
        for (name, f) in [("ED", p.edFrame), ("ES", p.esFrame)] where f >= 1 && f <= v.count {
            s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#c33\"/>", x(f - 1), y(v[f - 1]))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%@ %.0f mL</text>", x(f - 1) + 6, y(v[f - 1]) - 6, name, v[f - 1])
        }
        s += "<text x=\"\(Int(pad))\" y=\"\(Int(h - 8))\" font-size=\"11\">frame 1</text><text x=\"\(Int(w - pad - 50))\" y=\"\(Int(h - 8))\" font-size=\"11\">frame \(v.count)</text></svg>"
        return s
    }

    static func suggestions(_ picks: [Suggestions.Pick]) -> String {
        var b = """
            <p>The done studies whose corrected labels should teach the next refit most: the most uncertain first, \
            then each by its uncertainty weighed by how unlike the ones above it it is. Download a study's input and its \
            labels, correct the labels, and drop both into the labels folder.</p>
            """
        if picks.isEmpty { return b + "<p>No done study with an uncertainty that is not labelled yet.</p>" }
        b += "<table class=\"suggest\"><tr><th></th><th>#</th><th>Study</th><th>Uncertainty</th><th>Apart</th><th>Download</th></tr>"
        for (n, p) in picks.enumerated() {
            let c = p.candidate
            b += "<tr><td>\(n + 1)</td><td><a href=\"/studies/\(c.id)\">\(c.id)</a></td><td><a href=\"/studies/\(c.id)\">\(esc(c.name))</a></td>"
            b += "<td>\(num(c.uncertainty, 3))</td><td>\(p.distance.map { num($0, 2) } ?? "most uncertain")</td>"
            b += "<td><a href=\"/studies/\(c.id)/input\" download>input (zip)</a> <a href=\"/studies/\(c.id)/files/labels_ed.nii.gz\" download>ED labels</a> "
            b += "<a href=\"/studies/\(c.id)/files/labels_es.nii.gz\" download>ES labels</a></td></tr>"
        }
        return b + "</table>"
    }

    static func models(versions: [ModelMetrics], current: String?, error: String?, refits: [RefitRecord], csrf: String, serving: String) -> String {
        var b = "<p>Serving: <b>\(esc(serving))</b></p>"
        if let error { b += "<p class=\"error\">The model store cannot be read: \(esc(error))</p>" }
        if current != nil {
            b += "<form method=\"post\" action=\"/models/rollback\"><input type=\"hidden\" name=\"csrf\" value=\"\(esc(csrf))\"><button type=\"submit\">Roll back to the version before \(esc(current!))</button></form>"
        }
        b += "<h2>Versions</h2>"
        if versions.isEmpty { b += "<p>No versions yet: the embedded default head serves.</p>" } else {
            b += "<table><tr><th>Version</th><th>Created</th><th>Decision</th><th>Dice</th><th>Parent's Dice</th><th>Trained on</th><th>Reason</th><th></th></tr>"
            for m in versions {
                let cur = m.version == current
                b += "<tr\(cur ? " class=\"current\"" : "")><td>\(esc(m.version))\(cur ? " (current)" : "")</td><td>\(esc(m.created))</td><td>\(esc(m.decision.status.rawValue))</td>"
                b += "<td>\(num(m.validation?.meanDice, 4))</td><td>\(num(m.parentValidation?.meanDice, 4))</td><td>\(m.trainingCases.count) cases, \(m.trainingVolumes) frames</td><td>\(esc(m.decision.reason))</td><td>"
                if !cur {
                    b += "<form method=\"post\" action=\"/models/promote\"><input type=\"hidden\" name=\"csrf\" value=\"\(esc(csrf))\"><input type=\"hidden\" name=\"version\" value=\"\(esc(m.version))\"><button type=\"submit\">Promote</button></form>"
                }
                b += "</td></tr>"
            }
            b += "</table>"
        }
        b += "<h2>Refits</h2>"
        if refits.isEmpty { b += "<p>None yet.</p>" } else {
            b += "<table><tr><th>#</th><th>Started</th><th>Finished</th><th>Volumes</th><th>Outcome</th><th>Candidate</th><th>Detail</th></tr>"
            for r in refits.reversed() {
                b += "<tr><td>\(r.id)</td><td>\(time(r.startedAt))</td><td>\(time(r.finishedAt))</td><td>\(r.volumes)</td><td>\(esc(r.outcome ?? "running"))</td><td>\(esc(r.candidateVersion ?? ""))</td><td>\(esc(r.detail ?? ""))</td></tr>"
            }
            b += "</table>"
        }
        return b
    }
}
