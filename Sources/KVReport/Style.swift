/// The report's style sheet: system fonts, light and dark colour schemes (`prefers-color-scheme`),
/// tables that scroll sideways on narrow screens, figures on a white card (their colours assume
/// white paper) scaled down to the page width. Nothing in it is needed to read the page.
enum Style {
    static let css = """
        :root{color-scheme:light dark;--fg:#1b1f24;--bg:#ffffff;--muted:#5b6470;--line:#d5dae0;--head:#eef1f5;\
        --best:#dcf1e2;--ref:#f4f4f4;--warn:#fff4d6;--warnline:#d9a400;--accent:#0b5cad}
        @media (prefers-color-scheme:dark){:root{--fg:#e6e9ed;--bg:#15181c;--muted:#a1a9b3;--line:#3a4048;--head:#232931;\
        --best:#1e3d2a;--ref:#1c2026;--warn:#3a3116;--warnline:#c99a06;--accent:#7cb8ff}}
        body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
        main{max-width:1320px;margin:0 auto;padding:20px 22px 64px}
        a{color:var(--accent)}
        h1{font-size:1.7em;margin:.2em 0 .1em}
        h2{font-size:1.3em;margin-top:2.2em;border-bottom:1px solid var(--line);padding-bottom:.2em}
        h3{font-size:1.07em;margin-top:1.6em}
        code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:.88em}
        pre{white-space:pre-wrap;word-break:break-all;background:var(--head);padding:8px 10px;border-radius:4px}
        .scroll{overflow-x:auto;max-width:100%}
        table{border-collapse:collapse;margin:.5em 0 1em;font-size:.86em}
        th,td{border:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
        table.prov td,table.problems td{overflow-wrap:anywhere}
        td.pol{white-space:nowrap}
        thead th{background:var(--head);white-space:nowrap}
        tbody th{background:var(--head);font-weight:600;white-space:nowrap}
        td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        td.best{background:var(--best);font-weight:700}
        tr.ref td{background:var(--ref);font-style:italic}
        td.na{color:var(--muted);text-align:center}
        caption{caption-side:top;text-align:left;color:var(--muted);padding:0 0 4px;font-size:.95em}
        .warn{background:var(--warn);border-left:4px solid var(--warnline);padding:6px 10px;margin:.6em 0;border-radius:2px}
        .muted{color:var(--muted)}
        .swatch{display:inline-block;width:.75em;height:.75em;border-radius:2px;margin-right:.4em;border:1px solid #0003}
        .figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
        figure{margin:8px 0;background:#fff;color:#222;border:1px solid var(--line);border-radius:4px;padding:6px;max-width:100%;box-sizing:border-box}
        figure svg,figure img{display:block;max-width:100%;height:auto}
        @media (min-width:1000px){figure.half{width:calc(50% - 7px)}figure.half svg{width:100%}}
        figcaption{font-size:.84em;padding:4px 2px 0;max-width:60em}
        dl.defs dt{font-weight:700;margin-top:.8em;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
        dl.defs dd{margin:.15em 0 0 1.4em}
        dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px}
        dl.kv dt{font-weight:600}
        dl.kv dd{margin:0}
        nav ol{margin:.3em 0;padding-left:1.4em}
        details{margin:.5em 0}
        summary{cursor:pointer;color:var(--accent)}
        footer{margin-top:3em;color:var(--muted);font-size:.85em}
        """
}
