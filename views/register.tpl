{{%AUTOESCAPE context="HTML"}}
<section class="card narrow" aria-labelledby="register-h">
<h1 id="register-h">Create an account</h1>
<p class="lead">Raise tickets and follow them until your question is answered.</p>
<form class="form" method="post" action="/register" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field-row">
<div class="field">
<label for="first_name">First name</label>
<input type="text" id="first_name" name="first_name" value="{{FIRST_NAME}}" autocomplete="given-name" required{{#ERR_FIRST_NAME}} aria-invalid="true" aria-describedby="first_name-error"{{/ERR_FIRST_NAME}}>
{{#ERR_FIRST_NAME}}
<p class="field-error" id="first_name-error">{{MSG}}</p>
{{/ERR_FIRST_NAME}}
</div>
<div class="field">
<label for="last_name">Last name</label>
<input type="text" id="last_name" name="last_name" value="{{LAST_NAME}}" autocomplete="family-name" required{{#ERR_LAST_NAME}} aria-invalid="true" aria-describedby="last_name-error"{{/ERR_LAST_NAME}}>
{{#ERR_LAST_NAME}}
<p class="field-error" id="last_name-error">{{MSG}}</p>
{{/ERR_LAST_NAME}}
</div>
</div>
<div class="field">
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{{EMAIL}}" autocomplete="email" spellcheck="false" required{{#ERR_EMAIL}} aria-invalid="true" aria-describedby="email-error"{{/ERR_EMAIL}}>
{{#ERR_EMAIL}}
<p class="field-error" id="email-error">{{MSG}}</p>
{{/ERR_EMAIL}}
</div>
<div class="field">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="new-password" required aria-describedby="password-hint{{#ERR_PASSWORD}} password-error{{/ERR_PASSWORD}}"{{#ERR_PASSWORD}} aria-invalid="true"{{/ERR_PASSWORD}}>
<p class="hint" id="password-hint">At least 8 characters.</p>
{{#ERR_PASSWORD}}
<p class="field-error" id="password-error">{{MSG}}</p>
{{/ERR_PASSWORD}}
</div>
<div class="field">
<label for="confirm_password">Confirm password</label>
<input type="password" id="confirm_password" name="confirm_password" autocomplete="new-password" required{{#ERR_CONFIRM_PASSWORD}} aria-invalid="true" aria-describedby="confirm_password-error"{{/ERR_CONFIRM_PASSWORD}}>
{{#ERR_CONFIRM_PASSWORD}}
<p class="field-error" id="confirm_password-error">{{MSG}}</p>
{{/ERR_CONFIRM_PASSWORD}}
</div>
<div class="field">
<label for="role">Account type</label>
<select id="role" name="role" aria-describedby="role-hint{{#ERR_ROLE}} role-error{{/ERR_ROLE}}"{{#ERR_ROLE}} aria-invalid="true"{{/ERR_ROLE}}>
<option value="customer">Customer</option>
<option value="agent"{{#ROLE_AGENT}} selected{{/ROLE_AGENT}}>Agent (request an agent account)</option>
</select>
<p class="hint" id="role-hint">Choose Agent to request an agent account: an admin reviews the request, and you can log in once it is approved.</p>
{{#ERR_ROLE}}
<p class="field-error" id="role-error">{{MSG}}</p>
{{/ERR_ROLE}}
</div>
<div class="actions">
<button type="submit" class="btn btn-primary btn-block">Create account</button>
</div>
</form>
<p class="card-foot">Already have an account? <a href="/login">Log in</a></p>
</section>
