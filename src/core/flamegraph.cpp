// The flame graph renderer: a tree of frames from folded stacks, laid out as SVG rects
// with a small inline script for zooming.

#include "spyglass/flamegraph.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <vector>

#include "spyglass/utf8.hpp"

namespace SPYGLASS_NAMESPACE {

namespace {

struct Frame {
  std::string name;
  std::uint64_t total = 0;
  std::map<std::string, std::size_t, std::less<>> children;  // by name: index into the frame list
};

// The first characters of `name` that fit in `px` (about 7 px per character at 12 px),
// cut at a character boundary, ".." marking the cut; "" when not even 3 fit.
std::string_view fitting(std::string_view name, double px, std::string& tmp) {
  const auto fit = static_cast<std::size_t>(std::max(0.0, (px - 6) / 7));
  if (fit < 3) return {};
  std::size_t chars = 0, i = 0;
  for (; i < name.size(); ++i) {
    if ((static_cast<unsigned char>(name[i]) & 0xc0) != 0x80 && ++chars > fit) break;
  }
  if (i == name.size()) return name;
  // Too long: keep fit - 2 characters and append "..".
  chars = 0;
  for (i = 0; i < name.size(); ++i) {
    if ((static_cast<unsigned char>(name[i]) & 0xc0) != 0x80 && ++chars > fit - 2) break;
  }
  tmp.assign(name.substr(0, i)).append("..");
  return tmp;
}

// A warm colour from the name, so a function keeps its colour across graphs.
void colour(std::string_view name, char* out, std::size_t n) {
  std::uint32_t h = 2166136261U;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619U;
  std::snprintf(out, n, "rgb(%u,%u,%u)", 205 + h % 51, (h >> 8) % 231, (h >> 20) % 56);
}

std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

constexpr const char* kScript = R"JS(
(function () {
  var frames = [].slice.call(document.querySelectorAll('g.f'));
  var reset = document.getElementById('reset');
  function fit(g, w) {
    var t = g.querySelector('text'), n = g.getAttribute('data-n'), c = Math.floor((w - 6) / 7);
    var chars = Array.from(n);
    t.textContent = c < 3 ? '' : (chars.length <= c ? n : chars.slice(0, c - 2).join('') + '..');
  }
  function zoom(z) {
    var x0 = +z.getAttribute('data-x'), w0 = +z.getAttribute('data-w'), d0 = +z.getAttribute('data-d');
    var eps = 1e-9;
    frames.forEach(function (f) {
      var x = +f.getAttribute('data-x'), w = +f.getAttribute('data-w'), d = +f.getAttribute('data-d');
      var below = d < d0 && x <= x0 + eps && x + w >= x0 + w0 - eps;
      var inside = d >= d0 && x >= x0 - eps && x + w <= x0 + w0 + eps;
      if (!below && !inside) { f.style.display = 'none'; return; }
      f.style.display = '';
      var nx = below ? 0 : (x - x0) / w0, nw = below ? 1 : w / w0;
      var r = f.querySelector('rect'), t = f.querySelector('text');
      r.setAttribute('x', (PAD + nx * WIDTH).toFixed(2));
      r.setAttribute('width', Math.max(0, nw * WIDTH - 0.5).toFixed(2));
      t.setAttribute('x', (PAD + nx * WIDTH + 3).toFixed(2));
      f.style.opacity = below ? 0.6 : 1;
      fit(f, nw * WIDTH);
    });
    reset.style.display = w0 < 1 - eps ? '' : 'none';
  }
  frames.forEach(function (f) { f.addEventListener('click', function () { zoom(f); }); });
  reset.addEventListener('click', function () { zoom(frames[0]); });
})();
)JS";

}  // namespace

std::string render_flame_graph(const std::map<std::string, std::uint64_t>& stacks,
                               const FlameGraphOptions& options) {
  std::vector<Frame> frames(1);
  frames[0].name = "all";
  for (const auto& [stack, value] : stacks) {
    if (value == 0) continue;
    frames[0].total += value;
    std::size_t at = 0;
    std::string_view rest = stack;
    while (true) {
      const std::size_t cut = rest.find(';');
      const std::string_view part = rest.substr(0, cut);
      auto it = frames[at].children.find(part);
      std::size_t next = 0;
      if (it == frames[at].children.end()) {
        next = frames.size();
        frames[at].children.emplace(std::string(part), next);
        frames.push_back(Frame{std::string(part), 0, {}});
      } else {
        next = it->second;
      }
      frames[next].total += value;
      at = next;
      if (cut == std::string_view::npos) break;
      rest.remove_prefix(cut + 1);
    }
  }

  // Lay out depth-first: (frame, depth, x in value units), children left to right.
  struct Placed {
    std::size_t frame;
    unsigned depth;
    std::uint64_t x;
  };
  const double total = static_cast<double>(std::max<std::uint64_t>(frames[0].total, 1));
  const auto min_value = static_cast<std::uint64_t>(options.min_fraction * total);
  std::vector<Placed> placed;
  std::vector<Placed> todo{{0, 0, 0}};
  unsigned max_depth = 0;
  while (!todo.empty()) {
    const Placed p = todo.back();
    todo.pop_back();
    placed.push_back(p);
    max_depth = std::max(max_depth, p.depth);
    std::uint64_t x = p.x;
    std::vector<Placed> kids;
    for (const auto& [name, idx] : frames[p.frame].children) {
      if (frames[idx].total >= std::max<std::uint64_t>(min_value, 1)) kids.push_back({idx, p.depth + 1, x});
      x += frames[idx].total;
    }
    todo.insert(todo.end(), kids.rbegin(), kids.rend());
  }

  const double pad = 10;
  const double width = std::max(200U, options.width);
  const double inner = width - 2 * pad;
  const double fh = std::max(12U, options.frame_height);
  const double top = 50;
  const double height = top + (max_depth + 1) * fh + 10;
  const double bottom = height - 10;

  std::string svg;
  svg.reserve(256 * placed.size() + 4096);
  svg += "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + px(width) + "\" height=\"" +
         px(height) + "\" viewBox=\"0 0 " + px(width) + " " + px(height) + "\">\n";
  svg +=
      "<style>text{font-family:monospace;font-size:12px;fill:#000}g.f{cursor:pointer}g.f:hover "
      "rect{stroke:#000;"
      "stroke-width:0.5}#reset{cursor:pointer;fill:#06c}</style>\n";
  svg +=
      "<rect x=\"0\" y=\"0\" width=\"" + px(width) + "\" height=\"" + px(height) + "\" fill=\"#fdf8ee\"/>\n";
  svg += "<text x=\"" + px(width / 2) + "\" y=\"24\" text-anchor=\"middle\" style=\"font-size:17px\">";
  append_xml_escaped(options.title, svg);
  svg +=
      "</text>\n<text id=\"reset\" x=\"" + px(pad) + "\" y=\"24\" style=\"display:none\">Reset zoom</text>\n";

  std::string tmp;
  char fill[32];
  for (const Placed& p : placed) {
    const Frame& f = frames[p.frame];
    const double fx = static_cast<double>(p.x) / total;
    const double fw = static_cast<double>(f.total) / total;
    const double x = pad + fx * inner;
    const double w = fw * inner;
    const double y = bottom - (p.depth + 1) * fh;
    char share[32];
    std::snprintf(share, sizeof share, "%.2f%%", 100 * fw);
    svg += "<g class=\"f\" data-x=\"";
    char frac[96];
    std::snprintf(frac, sizeof frac, "%.17g\" data-w=\"%.17g\" data-d=\"%u", fx, fw, p.depth);
    svg += frac;
    svg += "\" data-n=\"";
    append_xml_escaped(f.name, svg);
    svg += "\"><title>";
    append_xml_escaped(f.name, svg);
    svg += " (" + std::to_string(f.total) + " ";
    append_xml_escaped(options.unit, svg);
    svg += ", " + std::string(share) + ")</title><rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" +
           px(std::max(0.0, w - 0.5)) + "\" height=\"" + px(fh - 1) + "\" rx=\"2\" fill=\"";
    if (p.frame == 0) {
      svg += "rgb(200,200,200)";
    } else {
      colour(f.name, fill, sizeof fill);
      svg += fill;
    }
    svg += "\"/><text x=\"" + px(x + 3) + "\" y=\"" + px(y + fh - 5) + "\">";
    append_xml_escaped(fitting(f.name, w, tmp), svg);
    svg += "</text></g>\n";
  }
  svg += "<script type=\"text/ecmascript\"><![CDATA[\nvar PAD = " + px(pad) + ", WIDTH = " + px(inner) + ";";
  svg += kScript;
  svg += "]]></script>\n</svg>\n";
  return svg;
}

}  // namespace SPYGLASS_NAMESPACE
