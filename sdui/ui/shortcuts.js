// A1111's keyboard shortcuts: Ctrl+Enter or Alt+Enter generates in the visible tab (from anywhere in it), Esc
// interrupts it, and Ctrl+Up / Ctrl+Down in a prompt box change the weight of the selection or of the word under
// the cursor by 0.1: "cat" -> "(cat:1.1)", "(cat:1.1)" -> "(cat:1.2)", back to "cat" at 1.0.
(function () {
    "use strict";
    const STEP = 0.1;

    function visibleTabButton(suffix) {
        const buttons = gradioApp().querySelectorAll("button[id$='" + suffix + "']");
        for (const button of buttons) {
            if (button.offsetParent !== null && /^(txt2img|img2img|inpaint|outpaint|depth2img)_/.test(button.id)) {
                return button;
            }
        }
        return null;
    }

    function setValue(textarea, value, start, end) {
        textarea.value = value;
        textarea.setSelectionRange(start, end);
        textarea.dispatchEvent(new Event("input", {bubbles: true}));
    }

    // the bounds of what Ctrl+Up/Down acts on: the selection, else the "(...:w)" around the cursor, else its word
    function target(text, start, end) {
        if (start !== end) return [start, end];
        const open = text.lastIndexOf("(", start - 1);
        const close = text.indexOf(")", start);
        if (open !== -1 && close !== -1 && !text.slice(open + 1, start).includes(")") &&
            !text.slice(start, close).includes("(") && /:[\d.]+$/.test(text.slice(open + 1, close))) {
            return [open, close + 1];
        }
        let s = start, e = start;
        while (s > 0 && /[^\s,()[\]]/.test(text[s - 1])) s--;
        while (e < text.length && /[^\s,()[\]]/.test(text[e])) e++;
        return s === e ? null : [s, e];
    }

    function editWeight(textarea, delta) {
        const text = textarea.value;
        let bounds = target(text, textarea.selectionStart, textarea.selectionEnd);
        if (!bounds) return;
        let [s, e] = bounds;
        let inner = text.slice(s, e);
        let weight = 1.0;
        const weighted = /^\((.*):([\d.]+)\)$/s.exec(inner);
        if (weighted) {
            inner = weighted[1];
            weight = parseFloat(weighted[2]);
        } else if (s > 0 && text[s - 1] === "(" && /^:[\d.]+\)/.test(text.slice(e))) {
            const m = /^:([\d.]+)\)/.exec(text.slice(e));  // a selection inside "(x:1.2)"
            weight = parseFloat(m[1]);
            s -= 1;
            e += m[0].length;
        }
        weight = parseFloat((weight + delta).toPrecision(12));  // as A1111 writes it: 1.1, 1.35, 2.0
        const shown = String(weight).length === 1 ? weight + ".0" : String(weight);
        const replaced = weight === 1 ? inner : "(" + inner + ":" + shown + ")";
        const innerStart = weight === 1 ? s : s + 1;
        setValue(textarea, text.slice(0, s) + replaced + text.slice(e), innerStart, innerStart + inner.length);
    }

    document.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.altKey || event.metaKey)) {
            const generate = visibleTabButton("_generate");
            if (generate) {
                event.preventDefault();
                generate.click();
            }
        } else if (event.key === "Escape") {
            const interrupt = visibleTabButton("_interrupt");
            if (interrupt) interrupt.click();
        } else if ((event.ctrlKey || event.metaKey) && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
            const textarea = event.target;
            if (textarea.tagName === "TEXTAREA" && textarea.closest("[id$='_prompt']")) {
                event.preventDefault();
                editWeight(textarea, event.key === "ArrowUp" ? STEP : -STEP);
            }
        }
    }, true);
})();
