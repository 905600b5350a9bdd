// Translates the page with window.localization ({"English text": "translation"}) as it appears: text nodes whose
// whole (trimmed) text is a key, and placeholder/title attributes. What users type or the program outputs
// (textareas, inputs, code) is never translated.
(function () {
    "use strict";
    const table = window.localization || {};
    if (!Object.keys(table).length) return;
    const SKIP = new Set(["TEXTAREA", "INPUT", "SCRIPT", "STYLE", "CODE", "PRE"]);

    function translated(text) {
        const key = (text || "").trim();
        return Object.prototype.hasOwnProperty.call(table, key) ? text.replace(key, table[key]) : null;
    }

    function translateElement(el) {
        for (const attribute of ["placeholder", "title"]) {
            const value = el.getAttribute && el.getAttribute(attribute);
            const done = value && translated(value);
            if (done) el.setAttribute(attribute, done);
        }
    }

    function translate(root) {
        if (!root) return;
        if (root.nodeType === Node.TEXT_NODE) {
            if (root.parentElement && !SKIP.has(root.parentElement.tagName)) {
                const done = translated(root.textContent);
                if (done !== null) root.textContent = done;
            }
            return;
        }
        if (root.nodeType !== Node.ELEMENT_NODE && root.nodeType !== Node.DOCUMENT_FRAGMENT_NODE) return;
        if (SKIP.has(root.tagName)) return;
        if (root.nodeType === Node.ELEMENT_NODE) translateElement(root);
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            if (node.nodeType === Node.ELEMENT_NODE) {
                translateElement(node);
            } else if (node.parentElement && !SKIP.has(node.parentElement.tagName)) {
                const done = translated(node.textContent);
                if (done !== null) node.textContent = done;
            }
        }
    }

    onUiUpdate(function (mutations) {
        for (const m of mutations || []) {
            if (m.type === "characterData") translate(m.target);
            for (const node of m.addedNodes) translate(node);
        }
    });
    onUiLoaded(() => translate(gradioApp()));
})();
