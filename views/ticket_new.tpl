{{%AUTOESCAPE context="HTML"}}
<section class="card medium" aria-labelledby="new-ticket-h">
<h1 id="new-ticket-h">New ticket</h1>
<p class="lead">Tell us what you need. You can follow the answer on the ticket's page, and we email you when it changes.</p>
<form class="form" method="post" action="/tickets" enctype="multipart/form-data" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field">
<label for="subject">Subject</label>
<input type="text" id="subject" name="subject" value="{{SUBJECT}}" maxlength="200" required{{#ERR_SUBJECT}} aria-invalid="true" aria-describedby="subject-error"{{/ERR_SUBJECT}}>
{{#ERR_SUBJECT}}
<p class="field-error" id="subject-error">{{MSG}}</p>
{{/ERR_SUBJECT}}
</div>
<div class="field">
<label for="priority">Priority</label>
<select id="priority" name="priority"{{#ERR_PRIORITY}} aria-invalid="true" aria-describedby="priority-error"{{/ERR_PRIORITY}}>
<option value="low"{{#PRIO_LOW}} selected{{/PRIO_LOW}}>Low</option>
<option value="normal"{{#PRIO_NORMAL}} selected{{/PRIO_NORMAL}}>Normal</option>
<option value="high"{{#PRIO_HIGH}} selected{{/PRIO_HIGH}}>High</option>
<option value="urgent"{{#PRIO_URGENT}} selected{{/PRIO_URGENT}}>Urgent</option>
</select>
{{#ERR_PRIORITY}}
<p class="field-error" id="priority-error">{{MSG}}</p>
{{/ERR_PRIORITY}}
</div>
<div class="field">
<label for="description">Description</label>
<textarea id="description" name="description" rows="10" maxlength="20000" required data-draft-key="ticket-new" aria-describedby="description-hint{{#ERR_DESCRIPTION}} description-error{{/ERR_DESCRIPTION}}"{{#ERR_DESCRIPTION}} aria-invalid="true"{{/ERR_DESCRIPTION}}>
{{DESCRIPTION:pre_escape}}</textarea>
<p class="hint" id="description-hint">What happened, what you expected, and anything that helps us reproduce it.</p>
{{#ERR_DESCRIPTION}}
<p class="field-error" id="description-error">{{MSG}}</p>
{{/ERR_DESCRIPTION}}
</div>
<div class="field">
<label for="attachment">Attach files <span class="muted">(optional)</span></label>
<input type="file" id="attachment" name="attachment" multiple data-max-files="{{ATTACH_MAX_FILES}}" data-max-bytes="{{ATTACH_MAX_BYTES}}" aria-describedby="attachment-hint{{#ERR_ATTACHMENT}} attachment-error{{/ERR_ATTACHMENT}}"{{#ERR_ATTACHMENT}} aria-invalid="true"{{/ERR_ATTACHMENT}}>
<p class="hint" id="attachment-hint">{{ATTACH_LIMIT}}</p>
<ul class="file-list" hidden></ul>
{{#ERR_ATTACHMENT}}
<p class="field-error" id="attachment-error">{{MSG}}</p>
{{/ERR_ATTACHMENT}}
</div>
<div class="actions">
<button type="submit" class="btn btn-primary">Create ticket</button>
<a class="btn btn-ghost" href="/tickets">Cancel</a>
</div>
</form>
</section>
