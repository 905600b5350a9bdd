// Extra networks cards: a click adds the card's text to the tab's prompt (or takes it out when it is there, as
// A1111's cards do); a checkpoint card loads that checkpoint; the search box hides cards that do not match.
(function () {
    "use strict";

    function setValue(textarea, value) {
        textarea.value = value;
        textarea.dispatchEvent(new Event("input", {bubbles: true}));  // Gradio reads the box on input
    }

    window.sduiCardClicked = function (tab, card) {
        const app = gradioApp();
        if (card.dataset.kind === "checkpoints") {
            const box = app.querySelector("#" + tab + "_extra_networks_checkpoint textarea");
            const button = app.querySelector("#" + tab + "_extra_networks_select");
            if (box && button) {
                setValue(box, card.dataset.name);
                setTimeout(() => button.click(), 50);
            }
            return;
        }
        const textarea = app.querySelector("#" + tab + "_prompt textarea");
        const text = card.dataset.prompt;
        if (!textarea || !text) return;
        const current = textarea.value;
        if (current.includes(text)) {
            setValue(textarea, current.replace(text, "").replace(/  +/g, " ").trim());
        } else {
            setValue(textarea, current.trim() ? current.trimEnd() + " " + text : text);
        }
    };

    function applyFilters(panel) {
        const query = panel.querySelector(".extra-network-search").value.trim().toLowerCase();
        const folder = panel.dataset.folder || "";
        for (const card of panel.querySelectorAll(".extra-network-card")) {
            const text = (card.dataset.name + " " + card.title).toLowerCase();
            const inFolder = !folder || card.dataset.folder === folder || card.dataset.folder.startsWith(folder + "/");
            card.style.display = (!query || text.includes(query)) && inFolder ? "" : "none";
        }
    }

    window.sduiFilterCards = function (input) {
        applyFilters(input.closest(".extra-network-panel"));
    };

    // a folder button shows that folder's cards (and its subfolders'); pressed again, all cards
    window.sduiFolderClicked = function (button) {
        const panel = button.closest(".extra-network-panel");
        const chosen = panel.dataset.folder === button.dataset.folder ? "" : button.dataset.folder;
        panel.dataset.folder = chosen;
        for (const b of panel.querySelectorAll(".extra-network-folder")) {
            b.classList.toggle("selected", b.dataset.folder === chosen);
        }
        applyFilters(panel);
    };

    window.sduiSortCards = function (select) {
        const container = select.closest(".extra-network-panel").querySelector(".extra-network-cards");
        const cards = Array.from(container.querySelectorAll(".extra-network-card"));
        cards.sort((a, b) => select.value === "mtime"
            ? Number(b.dataset.mtime) - Number(a.dataset.mtime)
            : a.dataset.name.toLowerCase().localeCompare(b.dataset.name.toLowerCase()));
        for (const card of cards) container.appendChild(card);
    };
})();
