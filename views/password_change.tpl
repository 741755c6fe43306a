{{%AUTOESCAPE context="HTML"}}
<section class="card narrow" aria-labelledby="change-h">
<h1 id="change-h">Change password</h1>
<p class="lead">After the change you are logged out everywhere and asked to log in again.</p>
<form class="form" method="post" action="/password/change" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field">
<label for="current_password">Current password</label>
<input type="password" id="current_password" name="current_password" autocomplete="current-password" required{{#ERR_CURRENT_PASSWORD}} aria-invalid="true" aria-describedby="current_password-error"{{/ERR_CURRENT_PASSWORD}}>
{{#ERR_CURRENT_PASSWORD}}
<p class="field-error" id="current_password-error">{{MSG}}</p>
{{/ERR_CURRENT_PASSWORD}}
</div>
<div class="field">
<label for="password">New password</label>
<input type="password" id="password" name="password" autocomplete="new-password" required aria-describedby="password-hint{{#ERR_PASSWORD}} password-error{{/ERR_PASSWORD}}"{{#ERR_PASSWORD}} aria-invalid="true"{{/ERR_PASSWORD}}>
<p class="hint" id="password-hint">At least 8 characters, different from the current one.</p>
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
<button type="submit" class="btn btn-primary">Change password</button>
<a class="btn btn-ghost" href="/account">Cancel</a>
</div>
</form>
</section>
