"""The README's picture of the DenseSynth panel (docs/panel.png), made without Blender's GUI.

No Blender binary runs here (only the `bpy` module, headless: no window is drawn), so the
picture is an equivalent rendering of the panel's layout: the panel's own `draw()` is called
with a recording stand-in for `bpy.types.UILayout` (rows, columns, boxes, grids, labels,
properties, operators), which records the real property names and values of the registered
scene properties and the real operator labels; the recording is then drawn with Pillow in the
colours of Blender's default dark theme, beside the "DenseSynth Preview" image of the same
session (a real render, shown in one of its ground-truth views).

    python farm/panel_picture.py --out docs/panel.png

The session it pictures: the add-on enabled, a small config, a preview rendered, a clip
(the built-in walk, converted to .npz) loaded onto the body, the IUV view with keypoints.
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Blender 5.0's default dark theme (Preferences > Themes, "Blender Dark").
THEME = {"region": (48, 48, 48), "header": (61, 61, 61), "box": (40, 40, 40), "box_outline": (30, 30, 30),
         "button": (84, 84, 84), "button_on": (71, 114, 179), "field": (29, 29, 29), "number": (84, 84, 84),
         "text": (230, 230, 230), "text_dim": (160, 160, 160), "tab": (35, 35, 35), "error": (255, 110, 110)}
ROW = 22     # widget height (Blender: 20 units at 1.1 resolution scale)
GAP = 3      # between rows
PAD = 8      # inside the region and boxes


@dataclass
class Item:
    """One widget the panel asked for."""

    kind: str                 # label, prop, operator, separator
    text: str = ""
    icon: str = "NONE"
    prop_type: str = ""       # prop: BOOLEAN, INT, FLOAT, STRING, ENUM
    value: Any = None         # prop: the property's current value (enum: the item's name)
    identifier: str = ""      # prop: property name; operator: bl_idname
    depress: bool = False
    settings: dict = field(default_factory=dict)  # operator: the properties the panel set on it


class OperatorProperties:
    """What `layout.operator()` returns: the panel sets the operator's properties on it."""

    def __init__(self, item: Item):
        object.__setattr__(self, "_item", item)

    def __setattr__(self, name: str, value: Any) -> None:
        self._item.settings[name] = value


class RecordingLayout:
    """A stand-in for `bpy.types.UILayout` that records what the panel draws. Methods the
    recorder does not know raise AttributeError, so a panel using new layout API fails here
    instead of being pictured wrongly."""

    def __init__(self, kind: str = "column", align: bool = False, columns: int = 1):
        self.kind, self.align, self.columns = kind, align, columns
        self.children: list[RecordingLayout | Item] = []
        self.enabled, self.active, self.alert = True, True, False

    def _child(self, kind: str, align: bool = False, columns: int = 1) -> "RecordingLayout":
        child = RecordingLayout(kind, align, columns)
        self.children.append(child)
        return child

    def row(self, align: bool = False, **_: Any) -> "RecordingLayout":
        return self._child("row", align)

    def column(self, align: bool = False, **_: Any) -> "RecordingLayout":
        return self._child("column", align)

    def box(self) -> "RecordingLayout":
        return self._child("box")

    def grid_flow(self, columns: int = 0, even_columns: bool = False, align: bool = False, **_: Any):
        return self._child("grid", align, max(columns, 1))

    def separator(self, **_: Any) -> None:
        self.children.append(Item("separator"))

    def label(self, text: str = "", icon: str = "NONE", **_: Any) -> None:
        self.children.append(Item("label", text, icon))

    def prop(self, data, property: str, text: str | None = None, icon: str = "NONE", **_: Any) -> None:
        rna = data.bl_rna.properties[property]  # KeyError: the panel names no such property
        value = getattr(data, property)
        if rna.type == "ENUM":
            value = rna.enum_items[value].name
        self.children.append(Item("prop", rna.name if text is None else text, icon, rna.type, value, property))

    def operator(self, operator: str, text: str | None = None, icon: str = "NONE", depress: bool = False,
                 **_: Any) -> OperatorProperties:
        import bpy

        module, name = operator.split(".")
        label = getattr(getattr(bpy.ops, module), name).get_rna_type().name  # RuntimeError: unregistered
        item = Item("operator", label if text is None else text, icon, identifier=operator, depress=depress)
        self.children.append(item)
        return OperatorProperties(item)

    def items(self) -> list[Item]:
        """Every widget, depth first (what the panel offers)."""
        found: list[Item] = []
        for child in self.children:
            found += child.items() if isinstance(child, RecordingLayout) else [child]
        return found


def record_panel(context=None) -> RecordingLayout:
    """The DenseSynth panel's layout in `context` (the window's scene), as its draw() makes it."""
    import bpy

    panel_class = bpy.types.DENSESYNTH_PT_panel
    root = RecordingLayout()

    class Panel:  # draw() reads self.layout only
        layout = root

    panel_class.draw(Panel(), context or bpy.context)
    return root


# --- drawing --------------------------------------------------------------------------------
def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/Library/Fonts"):
        if (Path(folder) / name).is_file():
            return ImageFont.truetype(str(Path(folder) / name), size)
    return ImageFont.load_default(size=size)


def _fit(draw, text: str, font, width: int) -> str:
    """`text` shortened in the middle with '…' to fit `width` pixels (as Blender clips paths)."""
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 2 and draw.textlength(text[:keep // 2] + "…" + text[-(keep - keep // 2):], font=font) > width:
        keep -= 1
    return text[:keep // 2] + "…" + text[-(keep - keep // 2):]


def _height(node) -> int:
    if isinstance(node, Item):
        return 8 if node.kind == "separator" else ROW
    heights = [_height(child) for child in node.children]
    if node.kind == "row":
        body = max(heights, default=0)
    elif node.kind == "grid":
        rows = [max(heights[i:i + node.columns]) for i in range(0, len(heights), node.columns)]
        body = sum(rows) + (0 if node.align else GAP) * max(len(rows) - 1, 0)
    else:
        body = sum(heights) + (0 if node.align else GAP) * max(len(heights) - 1, 0)
    return body + (2 * PAD - 2 if node.kind == "box" else 0)


def _draw_item(draw, item: Item, box: tuple[int, int, int, int], fonts) -> None:
    x0, y0, x1, y1 = box
    font, small = fonts
    mid = (y0 + y1) // 2
    colour = THEME["text"]
    if item.kind == "label":
        error = item.icon == "ERROR"
        draw.text((x0 + 2, mid), _fit(draw, item.text, small, x1 - x0 - 4), fill=THEME["error"] if error else colour,
                  font=small, anchor="lm")
    elif item.kind == "operator":
        fill = THEME["button_on"] if item.depress else THEME["button"]
        draw.rounded_rectangle((x0, y0 + 1, x1, y1 - 1), 4, fill=fill)
        draw.text(((x0 + x1) // 2, mid), _fit(draw, item.text, font, x1 - x0 - 8), fill=colour, font=font,
                  anchor="mm")
    elif item.kind == "prop" and item.prop_type == "BOOLEAN":
        on = bool(item.value)
        fill = THEME["button_on"] if on else THEME["button"]
        draw.rounded_rectangle((x0 + 2, mid - 7, x0 + 16, mid + 7), 3, fill=fill)
        if on:
            draw.line([(x0 + 5, mid), (x0 + 8, mid + 3), (x0 + 14, mid - 4)], fill=(255, 255, 255), width=2)
        draw.text((x0 + 22, mid), _fit(draw, item.text, font, x1 - x0 - 24), fill=colour, font=font, anchor="lm")
    elif item.kind == "prop" and item.prop_type in ("INT", "FLOAT"):
        draw.rounded_rectangle((x0, y0 + 1, x1, y1 - 1), 4, fill=THEME["number"])
        value = f"{item.value:.3f}" if item.prop_type == "FLOAT" else str(item.value)
        draw.text((x1 - 7, mid), value, fill=colour, font=font, anchor="rm")
        room = int(x1 - x0 - 16 - draw.textlength(value, font=font))
        draw.text((x0 + 7, mid), _fit(draw, item.text, font, room), fill=colour, font=font, anchor="lm")
    elif item.kind == "prop":  # STRING, ENUM: the label on the left, the field on the right
        split = x0 + (x1 - x0) * 2 // 5 if item.text else x0
        if item.text:
            draw.text((split - 6, mid), _fit(draw, item.text, font, split - x0 - 8), fill=colour, font=font,
                      anchor="rm")
        fill = THEME["field"] if item.prop_type == "STRING" else THEME["button"]
        draw.rounded_rectangle((split, y0 + 1, x1, y1 - 1), 4, fill=fill)
        text = str(item.value) + ("  ▾" if item.prop_type == "ENUM" else "")
        draw.text((split + 7, mid), _fit(draw, text, font, x1 - split - 14), fill=colour, font=font, anchor="lm")


def _draw(draw, node, x0: int, y0: int, x1: int, fonts) -> None:
    if isinstance(node, Item):
        _draw_item(draw, node, (x0, y0, x1, y0 + ROW), fonts)
        return
    if node.kind == "box":
        draw.rounded_rectangle((x0, y0, x1, y0 + _height(node)), 5, fill=THEME["box"], outline=THEME["box_outline"])
        x0, y0, x1 = x0 + PAD - 2, y0 + PAD - 1, x1 - PAD + 2
    gap = 0 if node.align else GAP
    if node.kind == "row":
        count = max(len(node.children), 1)
        width = (x1 - x0 - gap * (count - 1)) / count
        for k, child in enumerate(node.children):
            left = round(x0 + k * (width + gap))
            _draw(draw, child, left, y0, round(left + width) - (1 if node.align else 0), fonts)
    elif node.kind == "grid":
        width = (x1 - x0 - gap * (node.columns - 1)) / node.columns
        for k, child in enumerate(node.children):
            row, column = divmod(k, node.columns)
            left = round(x0 + column * (width + gap))
            _draw(draw, child, left, y0 + row * (ROW + (gap or 1)), round(left + width) - 1, fonts)
    else:
        for child in node.children:
            _draw(draw, child, x0, y0, x1, fonts)
            y0 += _height(child) + gap


def picture(layout: RecordingLayout, preview=None, width: int = 360, title: str = "DenseSynth"):
    """The recording as a PIL image: the sidebar region with its tab, the panel header and
    body; `preview` (an (H, W, 3) uint8 array) beside it in an Image Editor-like frame."""
    import numpy as np
    from PIL import Image, ImageDraw

    fonts = (_font(12), _font(11))
    tab = 22
    header = 26
    body = _height(layout)
    panel_height = header + body + 2 * PAD
    side = 0
    if preview is not None:
        scale = max(1, min(3, (panel_height - 40) // preview.shape[0]))
        big = np.repeat(np.repeat(preview, scale, axis=0), scale, axis=1)
        side = big.shape[1] + 2 * PAD
    image = Image.new("RGB", (side + width + tab, panel_height), THEME["region"])
    draw = ImageDraw.Draw(image)
    if preview is not None:
        draw.rectangle((0, 0, side - 1, panel_height), fill=(29, 29, 29))
        draw.text((PAD, PAD + 6), "Image Editor: DenseSynth Preview", fill=THEME["text_dim"], font=fonts[1],
                  anchor="lm")
        image.paste(Image.fromarray(big), (PAD, PAD + 18))
    left = side
    draw.rectangle((left + width, 0, left + width + tab, panel_height), fill=THEME["tab"])
    draw.rounded_rectangle((left + width + 2, PAD, left + width + tab - 2, PAD + 96), 4, fill=THEME["header"])
    label = Image.new("RGBA", (92, tab - 4), (0, 0, 0, 0))
    ImageDraw.Draw(label).text((46, (tab - 4) // 2), title, fill=THEME["text"], font=fonts[1], anchor="mm")
    image.paste(label.rotate(90, expand=True), (left + width + 2, PAD + 2), label.rotate(90, expand=True))
    draw.rounded_rectangle((left + 4, 4, left + width - 4, header), 4, fill=THEME["header"])
    draw.polygon([(left + 12, 11), (left + 20, 11), (left + 16, 17)], fill=THEME["text"])
    draw.text((left + 26, 15), title, fill=THEME["text"], font=_font(12, bold=True), anchor="lm")
    _draw(draw, layout, left + PAD, header + PAD, left + width - PAD, fonts)
    return image


def preview_pixels():
    """The "DenseSynth Preview" image as (H, W, 3) uint8, top row first, or None."""
    import bpy
    import numpy as np

    image = bpy.data.images.get("DenseSynth Preview")
    if image is None:
        return None
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return np.round(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)


PICTURE_CONFIG = """render:
  resolution: [176, 224]
  beauty_samples: 16
  denoise: false
appearance:
  texture_size: 256
passes: [beauty, iuv, person_index, depth, normals]
"""


def artist_session(work: Path) -> None:
    """The session the README pictures (see the module's docstring)."""
    import bpy  # first: it puts Blender's own modules (addon_utils) on the path

    import addon_utils
    from densesynth.motion.builtin_clips import builtin_clip
    from densesynth.motion.clip import save_clip

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("densesynth", default_set=True, handle_error=None)
    config = work / "artist.yaml"
    config.write_text(PICTURE_CONFIG)
    clip = work / "walk.npz"
    save_clip(clip, builtin_clip("walk"))
    settings = bpy.context.scene.densesynth
    settings.config_path, settings.seed, settings.output_dir = str(config), 7, "//densesynth_out"
    assert bpy.ops.densesynth.load_motion(filepath=str(clip), start=0, end=30) == {"FINISHED"}
    bpy.context.scene.densesynth.show_keypoints = True
    assert bpy.ops.densesynth.show_view(view="IUV") == {"FINISHED"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "panel.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="densesynth_panel_") as work:
        artist_session(Path(work))
        image = picture(record_panel(), preview_pixels())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({image.width}x{image.height}, {args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
