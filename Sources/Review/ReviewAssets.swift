/// The page's style sheet and script, served from memory (no build step, no inline code).
enum ReviewAssets {
    static let css = """
        body { font-family: system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
        nav { background: #1d2330; padding: 0.6em 1em; display: flex; gap: 1.2em; align-items: center; }
        nav a { color: #e8ecf3; text-decoration: none; font-weight: 600; }
        nav form.logout { margin-left: auto; color: #c5ccd8; }
        main { padding: 1em 1.5em; }
        table { border-collapse: collapse; background: #fff; margin: 0.5em 0 1em; }
        th, td { border: 1px solid #d6dae2; padding: 0.25em 0.6em; text-align: left; font-size: 0.92em; }
        th a { color: inherit; }
        tr.failed td { background: #fdecec; }
        tr.current td { background: #eaf6ea; }
        .flag { color: #a4430c; font-weight: 700; }
        .error { color: #b00020; font-weight: 600; }
        form.login label { display: block; margin: 0.5em 0; }
        form.filter { margin-bottom: 0.5em; }
        figure.viewer { display: inline-block; margin: 0 1.5em 1em 0; }
        div.strip { background-repeat: no-repeat; background-color: #000; }
        input.slice { display: block; width: 100%; }
        img.qc { max-width: 100%; border: 1px solid #d6dae2; }
        pre { white-space: pre-wrap; margin: 0; }
        """

    /// The slice slider: each viewer's strip (every slice side by side in one picture) is shown
    /// one panel at a time, twice its size, with the contours' strip laid over it while the
    /// contours box is ticked.
    static let js = """
        (function () {
          var contours = document.getElementById('contours');
          var viewers = Array.prototype.slice.call(document.querySelectorAll('figure.viewer'));
          function show(v) {
            var strip = v.querySelector('div.strip'), range = v.querySelector('input.slice');
            var z = 2, w = +strip.dataset.width, h = +strip.dataset.height, n = +strip.dataset.slices, k = +range.value;
            var layers = 'url("' + strip.dataset.image + '")';
            if (!contours || contours.checked) layers = 'url("' + strip.dataset.contours + '"), ' + layers;
            strip.style.width = (z * w) + 'px';
            strip.style.height = (z * h) + 'px';
            strip.style.backgroundImage = layers;
            strip.style.backgroundSize = (z * w * n) + 'px ' + (z * h) + 'px';
            strip.style.backgroundPosition = (-(k - 1) * z * w) + 'px 0px';
            strip.dataset.shown = String(k);
            v.querySelector('output').textContent = String(k);
          }
          viewers.forEach(function (v) {
            v.querySelector('input.slice').addEventListener('input', function () { show(v); });
            show(v);
          });
          if (contours) contours.addEventListener('change', function () { viewers.forEach(show); });
        })();
        """
}
