{{%AUTOESCAPE context="HTML"}}
<section class="card narrow" aria-labelledby="reset-h">
<h1 id="reset-h">Set a new password</h1>
<p class="lead">Enter the 8-digit code from the email we sent you, then choose a new password.</p>
<form class="form" method="post" action="/password/reset" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field">
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{{EMAIL}}" autocomplete="email" spellcheck="false" required{{#ERR_EMAIL}} aria-invalid="true" aria-describedby="email-error"{{/ERR_EMAIL}}>
{{#ERR_EMAIL}}
<p class="field-error" id="email-error">{{MSG}}</p>
{{/ERR_EMAIL}}
</div>
<div class="field">
<label for="code">Code</label>
<input type="text" id="code" name="code" class="input-code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{8}" spellcheck="false" required aria-describedby="code-hint{{#ERR_CODE}} code-error{{/ERR_CODE}}"{{#ERR_CODE}} aria-invalid="true"{{/ERR_CODE}}>
<p class="hint" id="code-hint">8 digits, from the email.</p>
{{#ERR_CODE}}
<p class="field-error" id="code-error">{{MSG}}</p>
{{/ERR_CODE}}
</div>
<div class="field">
<label for="password">New password</label>
<input type="password" id="password" name="password" autocomplete="new-password" required aria-describedby="password-hint{{#ERR_PASSWORD}} password-error{{/ERR_PASSWORD}}"{{#ERR_PASSWORD}} aria-invalid="true"{{/ERR_PASSWORD}}>
<p class="hint" id="password-hint">At least 8 characters.</p>
{{#ERR_PASSWORD}}
<p class="field-error" id="password-error">{{MSG}}</p>
{{/ERR_PASSWORD}}
</div>
<div class="field">
<label for="confirm_password">Confirm new password</label>
<input type="password" id="confirm_password" name="confirm_password" autocomplete="new-password" required{{#ERR_CONFIRM_PASSWORD}} aria-invalid="true" aria-describedby="confirm_password-error"{{/ERR_CONFIRM_PASSWORD}}>
{{#ERR_CONFIRM_PASSWORD}}
<p class="field-error" id="confirm_password-error">{{MSG}}</p>
{{/ERR_CONFIRM_PASSWORD}}
</div>
<div class="actions">
<button type="submit" class="btn btn-primary btn-block">Set password</button>
</div>
</form>
<p class="card-foot">No code, or it expired? <a href="/password/forgot">Send a new code</a></p>
</section>
