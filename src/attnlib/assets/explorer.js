// The attention explorer of attnlib.plot.attention_explorer: builds the interactive view of every explorer on the
// page that is not built yet, from the JSON its root carries. No library, no network: it runs wherever the output
// runs its scripts (the course's site, from http or file://, Jupyter, Colab). Where scripts are dropped, the static
// picture that comes first in the output stays shown.
(function () {
  "use strict";

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function build(root) {
    var source = root.querySelector("script.ae-data");
    if (!source) return;
    var d = JSON.parse(source.textContent);
    root.setAttribute("data-ready", "");
    var nLayers = d.w.length, nHeads = d.w[0].length;
    var nq = d.queries.length, nk = d.keys.length;
    var rolloutLayer = d.rollout ? nLayers : -1; // the extra entry of the layer menu
    var meanHead = nHeads; // the extra entry of the head menu
    var state = {
      layer: d.start.layer, head: d.start.head, query: d.start.query, pinnedKey: -1
    };

    // the weight of query q on key k in the chosen view, as an integer in units of 1 / scale (mean: a float)
    function raw(q, k) {
      if (state.layer === rolloutLayer) return d.rollout[q][k];
      var layer = d.w[state.layer];
      if (state.head === meanHead) {
        var s = 0;
        for (var h = 0; h < nHeads; h++) s += layer[h][q][k];
        return s / nHeads;
      }
      return layer[state.head][q][k];
    }
    function weight(q, k) { return raw(q, k) / d.scale; }
    function text(w) { return w.toFixed(d.digits); }

    var app = el("div", "ae-app");
    app.appendChild(el("div", "ae-title", d.title));

    // the layer and head menus
    var controls = el("div", "ae-controls");
    function menu(label, names, cls) {
      var wrap = el("label", "ae-menu");
      wrap.appendChild(el("span", null, label + " "));
      var select = el("select", cls);
      names.forEach(function (name, i) {
        var option = el("option", null, name);
        option.value = String(i);
        select.appendChild(option);
      });
      wrap.appendChild(select);
      controls.appendChild(wrap);
      return select;
    }
    var layerNames = d.layers.slice();
    if (d.rollout) layerNames.push(d.rollout_name);
    var headNames = d.heads.slice();
    if (nHeads > 1) headNames.push("mean of the heads");
    var layerMenu = menu("layer", layerNames, "ae-layer");
    var headMenu = menu("head", headNames, "ae-head");
    var single = layerNames.length < 2 && headNames.length < 2; // one map: no menus, no view to name
    if (layerNames.length < 2) layerMenu.parentNode.hidden = true;
    if (headNames.length < 2) headMenu.parentNode.hidden = true;
    app.appendChild(controls);

    var queryCells = [], keyCells = [];
    function queryButton(i, label, cls) {
      var b = el("button", "ae-q " + cls, label);
      b.type = "button";
      b.setAttribute("data-query-index", String(i));
      b.setAttribute("aria-label", "query " + d.queries[i]);
      b.addEventListener("click", function () { select(i); });
      b.addEventListener("mouseenter", function () { select(i); });
      b.addEventListener("keydown", function (e) {
        var step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        if (step && queryCells[i + step]) {
          e.preventDefault();
          queryCells[i + step].focus();
        }
      });
      queryCells[i] = b;
      return b;
    }
    function keyCell(j, label, cls) {
      var c = el("span", "ae-k " + cls);
      c.setAttribute("data-key-index", String(j));
      c.tabIndex = 0;
      c.appendChild(el("span", "ae-label", label));
      c.appendChild(el("span", "ae-w"));
      c.addEventListener("mouseenter", function () { state.pinnedKey = j; readout(); });
      c.addEventListener("focus", function () { state.pinnedKey = j; readout(); });
      keyCells[j] = c;
      return c;
    }
    function row(label) {
      var r = el("div", "ae-row");
      r.appendChild(el("span", "ae-rowlabel", label));
      var tokens = el("div", "ae-tokens");
      r.appendChild(tokens);
      app.appendChild(r);
      return tokens;
    }

    var paired = nq === nk && d.queries.every(function (label, i) { return label === d.keys[i]; });
    if (!d.grid && paired) {
      // self-attention: each token's query button stands over its key cell, so the two stay aligned as they wrap
      var both = row(d.query_label + " / " + d.key_label);
      d.queries.forEach(function (label, i) {
        var column = el("div", "ae-col");
        column.appendChild(queryButton(i, label, "ae-tok"));
        column.appendChild(keyCell(i, label, "ae-tok"));
        both.appendChild(column);
      });
    } else if (!d.grid) {
      var qs = row(d.query_label), ks = row(d.key_label);
      d.queries.forEach(function (label, i) { qs.appendChild(queryButton(i, label, "ae-tok")); });
      d.keys.forEach(function (label, j) { ks.appendChild(keyCell(j, label, "ae-tok")); });
    } else {
      var rows = d.grid[0], cols = d.grid[1], prefix = nk - rows * cols;
      var panels = el("div", "ae-panels");
      app.appendChild(panels);
      var panel = function (caption, faint) {
        var p = el("figure", "ae-panel");
        p.appendChild(el("figcaption", null, caption));
        var extra = el("div", "ae-tokens");
        p.appendChild(extra);
        var grid = el("div", "ae-grid" + (faint ? " ae-faint" : ""));
        grid.style.gridTemplateColumns = "repeat(" + cols + ", 1fr)";
        grid.style.aspectRatio = cols + " / " + rows;
        var img = el("img", "ae-image");
        img.src = d.image;
        img.alt = "the image the patches are cut from";
        grid.appendChild(img);
        p.appendChild(grid);
        panels.appendChild(p);
        return { extra: extra, grid: grid };
      };
      var left = panel(d.query_label, false), right = panel(d.key_label, true);
      for (var i = 0; i < prefix; i++) {
        left.extra.appendChild(queryButton(i, d.queries[i], "ae-tok"));
        right.extra.appendChild(keyCell(i, d.keys[i], "ae-tok"));
      }
      for (var n = prefix; n < nk; n++) {
        var qb = queryButton(n, "", "ae-cell");
        var kc = keyCell(n, "", "ae-cell");
        kc.setAttribute("aria-label", d.keys[n]);
        left.grid.appendChild(qb);
        right.grid.appendChild(kc);
      }
    }

    var out = el("div", "ae-readout");
    out.setAttribute("aria-live", "polite");
    app.appendChild(out);
    var legend = el("div", "ae-legend");
    legend.appendChild(el("span", null, "0"));
    legend.appendChild(el("span", "ae-ramp"));
    var top = el("span");
    legend.appendChild(top);
    app.appendChild(legend);

    function readout() {
      var q = state.query, k = state.pinnedKey;
      var where = state.layer === rolloutLayer ? d.rollout_name :
        layerNames[state.layer] + ", " + headNames[state.head];
      var s = "query " + d.queries[q] + (single ? "" : " (" + where + ")");
      if (k >= 0) s += ": weight on key " + d.keys[k] + " = " + text(weight(q, k));
      else s += ": hover over or focus a key for its weight";
      out.textContent = s;
    }

    function render() {
      var q = state.query, largest = 0, j;
      root.setAttribute("data-active-query", String(q));
      root.setAttribute("data-active-layer", String(state.layer));
      root.setAttribute("data-active-head", state.layer === rolloutLayer ? "" : String(state.head));
      headMenu.disabled = state.layer === rolloutLayer;
      // one shade scale per view (layer and head), as one colour bar per heatmap: rows can be compared
      for (var i = 0; i < nq; i++) for (j = 0; j < nk; j++) largest = Math.max(largest, weight(i, j));
      for (j = 0; j < nk; j++) {
        var w = weight(q, j), t = largest > 0 ? w / largest : 0, c = keyCells[j];
        var level = Math.round(255 - 215 * t); // white (0) to dark grey (the view's largest weight)
        c.style.backgroundColor = "rgba(" + level + "," + level + "," + level + "," + (d.grid ? 0.85 : 1) + ")";
        c.style.color = t > 0.55 ? "#fff" : "#111";
        c.setAttribute("data-weight", text(w));
        c.title = "key " + d.keys[j] + ": " + text(w);
        c.querySelector(".ae-w").textContent = w.toFixed(2).replace(/^0(?=\.)/, "");
      }
      queryCells.forEach(function (b, i) {
        b.setAttribute("aria-pressed", i === q ? "true" : "false");
      });
      keyCells.forEach(function (c, i) { c.classList.toggle("ae-self", i === q && nq === nk); });
      top.textContent = text(largest) + (single ? " (the largest weight)" : " (the largest weight in this view)");
      readout();
    }
    function select(i) {
      if (i === state.query) return;
      state.query = i;
      render();
    }

    layerMenu.value = String(state.layer);
    headMenu.value = String(state.head);
    layerMenu.addEventListener("change", function () { state.layer = Number(layerMenu.value); render(); });
    headMenu.addEventListener("change", function () { state.head = Number(headMenu.value); render(); });
    render();
    // only a complete explorer replaces the static picture
    root.appendChild(app);
    var fallback = root.querySelector(".ae-fallback");
    if (fallback) fallback.hidden = true;
  }

  var roots = document.querySelectorAll("div.attention-explorer:not([data-ready])");
  for (var i = 0; i < roots.length; i++) {
    try {
      build(roots[i]);
    } catch (err) {
      // leave the static picture in place rather than half an explorer
      roots[i].setAttribute("data-ready", "failed");
      if (window.console) console.warn("attention explorer:", err);
    }
  }
})();
